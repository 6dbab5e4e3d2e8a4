"""The fully connected layer and the activation layer.

Weights are stored for row-major batches: a Dense layer computes ``Y = f(X @ W + b)`` with ``X`` of shape
``(batch, n_in)`` and ``W`` of shape ``(n_in, n_out)``. The textbook's ``W[l]`` of shape ``(n_l, n_{l-1})``, with
examples in columns (``Z[l] = W[l] A[l-1] + b[l]``), is this ``W`` transposed: ``W[l] = W.T``. On input with more
axes, Dense applies to the last one (Keras's rule): ``(batch, h, w, c)`` becomes ``(batch, h, w, units)``.
"""

from __future__ import annotations

import warnings

from netcore import activations, initializers, regularizers
from netcore.errors import ConfigurationError
from netcore.layers.base import Layer, ParamSpec, positive_int, rows, shaped


class KernelLayer(Layer):
    """What Dense and Conv2D share: ``y = f(inputs @ kernel + bias)``, its initialisers, penalties, constraint and
    the activation's backward pass. ``kernel_initializer`` defaults to He for the ReLU family and Xavier for the
    rest; ``bias_initializer`` to zeros."""

    def __init__(
        self,
        activation=None,
        use_bias: bool = True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        name: str | None = None,
        trainable: bool = True,
    ):
        super().__init__(name, trainable)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer or self.activation.default_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = regularizers.get_constraint(kernel_constraint)
        if self.kernel_initializer.symmetric:
            warnings.warn(
                f"{self.name}: a constant kernel initializer gives every unit the same weights and gradients, so "
                "they never differentiate (the symmetry problem); use a random initializer",
                stacklevel=3,
            )

    def kernel_specs(self, shape: tuple[int, ...], fan: tuple[int, int]) -> list[ParamSpec]:
        """The kernel ``W`` of ``shape`` and (with ``use_bias``) the bias ``b``, one per output unit."""
        specs = [ParamSpec("W", shape, self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint, fan)]
        if self.use_bias:
            specs.append(ParamSpec("b", (shape[-1],), self.bias_initializer, self.bias_regularizer, None, fan))
        return specs

    def config(self):
        act = self.activation
        return {
            "activation": act.kind,
            "activation_alpha": act.alpha,
            "use_bias": self.use_bias,
            "kernel_regularizer": regularizers.to_config(self.kernel_regularizer),
            "bias_regularizer": regularizers.to_config(self.bias_regularizer),
            "kernel_constraint": regularizers.to_config(self.kernel_constraint),
            **super().config(),
        }

    def check_trainable(self, act) -> None:
        if not act.differentiable:
            raise ConfigurationError(
                f"{self.name}: the step activation has no gradient and cannot be trained; use sigmoid to train"
                " a perceptron-like unit, and step only for inference"
            )

    def preactivation_gradient(self, dy, y, z, act):
        """``dL/dz`` from ``dL/dy`` (``dy`` itself for a linear layer)."""
        if act.kind == "linear":
            return dy
        dz = self.buffer("dz", y.shape, dy.dtype)
        return self.backend.activation_backward(dy, y, z, act.kind, act.alpha, dz)

    def kernel_gradients(self, inputs, dz) -> None:
        """``dW = inputs @ dz`` (``inputs`` as ``(fan_in, rows)``) and ``db = column sums of dz``, unless frozen."""
        if self.trainable:
            self.backend.matmul(inputs, dz, out=self.grads["W"].reshape(inputs.shape[0], -1))
            if self.use_bias:
                self.backend.column_sum(dz, out=self.grads["b"])


class Dense(KernelLayer):
    """Fully connected layer ``Y = f(X @ W + b)``.

    ``activation`` is a name (``"relu"``, ``"sigmoid"``, ...) or an :class:`~netcore.activations.Activation`.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        name: str | None = None,
        trainable: bool = True,
    ):
        self.units = positive_int("Dense", "units", units)
        super().__init__(
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            name,
            trainable,
        )
        #: Set by the model when it fuses this layer's softmax/sigmoid into the loss.
        self.emit_logits = False

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = (*self.input_shape[:-1], self.units)
        return self.output_shape

    def param_specs(self):
        return self.kernel_specs((self.n_in, self.units), (self.n_in, self.units))

    def config(self):
        return {"units": self.units, **super().config()}

    def forward(self, x, training, logits: bool = False):
        # Lean on purpose: on one row (predict serving a request) each Python call costs about what a kernel does.
        backend, act = self.backend, self.activation
        if logits and self.emit_logits:
            act = activations.linear()
        x2 = x if x.ndim == 2 else x.reshape(-1, self.n_in)  # a view: every batch is C-contiguous
        z, y = self._outputs(x2.shape[0], x.dtype)
        backend.matmul(x2, self.params["W"], out=z)
        if act.kind == "linear":
            y = z
        backend.bias_activation(z, self.params.get("b"), act.kind, act.alpha, y)
        if training:
            self.check_trainable(act)
            self._cache = (x2, y, z if act.needs_preactivation else None, act)
        return y if x.ndim == 2 else y.reshape(*x.shape[:-1], self.units)

    def _outputs(self, n: int, dtype) -> tuple:
        """The pre-activation and output buffers of ``n`` rows, made once per batch size. The output has its own
        buffer: in-place element-wise kernels cannot be vectorised by a compiler that must assume the input and
        output overlap."""
        slot = ("outputs", n)
        pair = self._buffers.get(slot)
        if pair is None:
            z = self.backend.empty((n, self.units), dtype)
            y = z if self.activation.kind == "linear" else self.backend.empty((n, self.units), dtype)
            pair = self._buffers[slot] = (z, y)
        return pair

    def backward(self, dy, need_dx):
        backend = self.backend
        x, y, z, act = self._cache
        dz = self.preactivation_gradient(shaped(dy, y.shape), y, z, act)
        self.kernel_gradients(x.T, dz)
        if not need_dx:
            return None
        dx = self.buffer("dx", x.shape, dz.dtype)
        backend.matmul(dz, self.params["W"].T, out=dx)
        return shaped(dx, (-1, *self.input_shape)) if len(self.input_shape) > 1 else dx


class Activation(Layer):
    """An activation as a layer of its own: ``Activation("tanh")``; on input of any shape (softmax over the last
    axis)."""

    def __init__(self, activation, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        self.activation = activations.get(activation)
        self.emit_logits = False

    def config(self):
        return {"activation": self.activation.kind, "activation_alpha": self.activation.alpha, **super().config()}

    def forward(self, x, training, logits: bool = False):
        act = self.activation
        if logits and self.emit_logits:
            return x
        x2 = rows(x, x.shape[-1])
        y = self.buffer("y", x2.shape, x.dtype)
        self.backend.activation_forward(x2, act.kind, act.alpha, y)
        if training:
            if not act.differentiable:
                raise ConfigurationError(f"{self.name}: the step activation has no gradient and cannot be trained")
            self._cache = (x2, y)
        return shaped(y, x.shape)

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        if self.emit_logits:
            return dy
        x, y = self._cache
        act = self.activation
        dx = self.buffer("dx", y.shape, dy.dtype)
        self.backend.activation_backward(shaped(dy, y.shape), y, x, act.kind, act.alpha, dx)
        return shaped(dx, dy.shape)


class ReLU(Layer):
    """Keras's ``ReLU`` layer: ``x`` where ``x >= threshold``, ``negative_slope * (x - threshold)`` below it,
    capped at ``max_value`` (``ReLU(6.0)`` is MobileNet's ReLU6). On input of any shape."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, name: str | None = None, trainable=True):
        super().__init__(name, trainable)
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)
        if (self.max_value is not None and self.max_value < 0) or self.negative_slope < 0:
            raise ConfigurationError(
                f"ReLU max_value and negative_slope must be non-negative, got {max_value!r}, {negative_slope!r}"
            )

    def config(self):
        settings = {"negative_slope": self.negative_slope, "threshold": self.threshold}
        return {"max_value": self.max_value, **settings, **super().config()}

    def forward(self, x, training):
        out = self.buffer("y", x.shape, x.dtype)
        scratch = self.buffer("scratch", x.shape, x.dtype) if self.negative_slope else None
        self.backend.relu_forward(x, self.max_value, self.negative_slope, self.threshold, out, scratch)
        if training:
            self._input = x
        return out

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        dx = self.buffer("dx", dy.shape, dy.dtype)
        return self.backend.relu_backward(dy, self._input, self.max_value, self.negative_slope, self.threshold, dx)
