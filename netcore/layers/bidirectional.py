"""Keras's Bidirectional wrapper: a recurrent layer run over the sequence both ways, the two outputs merged."""

from __future__ import annotations

from netcore.errors import ConfigurationError
from netcore.layers.base import Layer, ParamSpec
from netcore.layers.recurrent import _Recurrent

MERGE_MODES = ("concat", "sum", "mul", "ave")


class Bidirectional(Layer):
    """A recurrent layer run over the sequence both ways (Keras's wrapper): ``layer`` reads forwards, a copy of it
    with ``go_backwards`` flipped reads backwards, and their outputs are merged (``"concat"`` along the features,
    ``"sum"``, ``"mul"`` or ``"ave"``), the backward one realigned with time for sequence outputs. The weights are
    the forward layer's, then the backward layer's."""

    def __init__(self, layer: _Recurrent, merge_mode: str = "concat", name: str | None = None, trainable=True):
        if not isinstance(layer, _Recurrent):
            raise ConfigurationError(f"Bidirectional wraps a recurrent layer, not {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ConfigurationError(
                f"Bidirectional merge_mode must be one of {MERGE_MODES}, got {merge_mode!r} (None would give two "
                "outputs; a Sequential model passes one)"
            )
        super().__init__(name, trainable)
        from netcore.layers import from_config

        self.merge_mode = merge_mode
        self.forward_layer = layer
        settings = {**layer.config(), "go_backwards": not layer.go_backwards, "name": f"backward_{layer.name}"}
        self.backward_layer = from_config(type(layer).__name__, settings)
        self.sequences = layer.return_sequences

    @property
    def parts(self) -> tuple[_Recurrent, _Recurrent]:
        return self.forward_layer, self.backward_layer

    def twin(self):
        twin = super().twin()
        twin.forward_layer, twin.backward_layer = (part.twin() for part in self.parts)
        return twin

    def build(self, input_shape):
        for part in self.parts:
            part.build(input_shape)
        shape = self.forward_layer.output_shape
        self.input_shape = tuple(input_shape)
        self.output_shape = (*shape[:-1], 2 * shape[-1]) if self.merge_mode == "concat" else shape
        return self.output_shape

    def param_specs(self):
        return [
            ParamSpec(
                f"{prefix}_{spec.name}", spec.shape, spec.initializer, spec.regularizer, spec.constraint, spec.fan
            )
            for prefix, part in zip(("forward", "backward"), self.parts, strict=True)
            for spec in part.param_specs()
        ]

    def bind(self, backend, params, grads, state, owner=None):
        super().bind(backend, params, grads, state, owner)
        for prefix, part in zip(("forward", "backward"), self.parts, strict=True):
            mine = [spec.name for spec in part.param_specs()]
            part.bind(
                backend,
                {name: params[f"{prefix}_{name}"] for name in mine},
                {name: grads[f"{prefix}_{name}"] for name in mine},
                {},
                owner,
            )

    def config(self):
        inner = {"class": type(self.forward_layer).__name__, "config": self.forward_layer.config()}
        return {"layer": inner, "merge_mode": self.merge_mode, **super().config()}

    def output_mask(self, mask):
        return mask if self.sequences else None

    def _aligned(self, y):
        """The backward layer's output in time order (it returns its steps in the order it read them)."""
        return y[:, ::-1] if self.sequences else y

    def forward(self, x, training):
        forward, backward = self.parts
        for part in self.parts:
            part.mask = self.mask
            part.trainable = self.trainable
        ahead, behind = forward.forward(x, training), self._aligned(backward.forward(x, training))
        self._outputs = (ahead, behind)
        out = self.buffer("y", self.batch_shape(x.shape[0]), x.dtype)
        units = forward.units
        if self.merge_mode == "concat":
            out[..., :units] = ahead
            out[..., units:] = behind
        elif self.merge_mode == "sum":
            out[...] = ahead
            out += behind
        elif self.merge_mode == "mul":
            out[...] = ahead
            out *= behind
        else:
            out[...] = ahead
            out += behind
            out *= 0.5
        return out

    def backward(self, dy, need_dx):
        forward, backward = self.parts
        units = forward.units
        ahead, behind = self._outputs
        if self.merge_mode == "concat":
            dy_ahead, dy_behind = dy[..., :units], dy[..., units:]
        elif self.merge_mode == "sum":
            dy_ahead = dy_behind = dy
        elif self.merge_mode == "ave":
            dy[...] *= 0.5
            dy_ahead = dy_behind = dy
        else:
            dy_ahead, dy_behind = (
                self.buffer("dy_ahead", dy.shape, dy.dtype),
                self.buffer("dy_behind", dy.shape, dy.dtype),
            )
            dy_ahead[...] = dy
            dy_ahead *= behind
            dy_behind[...] = dy
            dy_behind *= ahead
        dx_ahead = forward.backward(dy_ahead, need_dx)
        dx_behind = backward.backward(self._aligned(dy_behind), need_dx)
        if not need_dx:
            return None
        dx = self.buffer("dx", dx_ahead.shape, dy.dtype)
        dx[...] = dx_ahead
        dx += dx_behind
        return dx
