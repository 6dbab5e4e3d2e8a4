"""Layers for sequences ``(batch, time, features)`` besides the recurrent ones: Masking, which marks padded time
steps so the layers after it skip them, and the mean over time."""

from __future__ import annotations

from backends.image_kernels import Window
from netcore.errors import ShapeError
from netcore.layers.base import Layer


def sequence_shape(layer: Layer, input_shape) -> tuple[int, int]:
    """``input_shape`` if it is a sequence shape ``(time, features)``, else a ShapeError naming the layer."""
    if len(input_shape) != 2:
        raise ShapeError(
            f"{layer.name} ({type(layer).__name__}) takes sequences (time, features), got input shape "
            f"{tuple(input_shape)}; give the model input_shape=(time, features) or reshape with Reshape"
        )
    return tuple(input_shape)


class Masking(Layer):
    """Marks the time steps whose features all equal ``mask_value`` as padding (Keras's Masking): the output is the
    input with those steps zeroed, and the mask travels on, so recurrent layers carry their state through padded
    steps unchanged, a sequence output there is zero, and the loss leaves those steps out."""

    def __init__(self, mask_value: float = 0.0, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        self.mask_value = float(mask_value)

    def build(self, input_shape):
        self.input_shape = self.output_shape = sequence_shape(self, input_shape)
        return self.output_shape

    def config(self):
        return {"mask_value": self.mask_value, **super().config()}

    def forward(self, x, training):
        n, steps = x.shape[:2]
        self._kept = self.buffer("kept", (n, steps), "bool")
        self._masked = self.buffer("masked", (n, steps), "bool")
        out = self.buffer("y", x.shape, x.dtype)
        return self.backend.sequence_mask(x, self.mask_value, self._kept, self._masked, out)

    def output_mask(self, mask):
        return self._kept

    def backward(self, dy, need_dx):
        return self.backend.fill_masked(self._masked, dy, 0) if need_dx else None


class GlobalAveragePooling1D(Layer):
    """The mean over time of each feature: ``(batch, time, features) -> (batch, features)`` (with a mask, over the
    steps kept). ``keepdims=True`` keeps a time axis of one step."""

    def __init__(self, keepdims: bool = False, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        steps, features = sequence_shape(self, input_shape)
        self.window = Window.of((steps, 1), (steps, 1), (steps, 1))  # the whole sequence as one pooling window
        self.input_shape = (steps, features)
        self.output_shape = (1, features) if self.keepdims else (features,)
        return self.output_shape

    def config(self):
        return {"keepdims": self.keepdims, **super().config()}

    def output_mask(self, mask):
        return None

    def forward(self, x, training):
        n, steps, features = x.shape
        out = self.buffer("y", (n, features), x.dtype)
        if self.mask is None:
            self.backend.avg_pool_forward(x.reshape(n, steps, 1, features), self.window, out.reshape(n, 1, 1, features))
        else:
            self.backend.masked_time_mean(x, self.mask, out)
        self._pooled_mask = self.mask
        return out.reshape(self.batch_shape(n))

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        n = dy.shape[0]
        steps, features = self.input_shape
        dy = dy.reshape(n, features)
        dx = self.buffer("dx", (n, steps, features), dy.dtype)
        if self._pooled_mask is None:
            grid = (n, steps, 1, features)
            return self.backend.avg_pool_backward(dy.reshape(n, 1, 1, features), self.window, dx.reshape(grid)).reshape(
                dx.shape
            )
        return self.backend.masked_time_mean_backward(dy, self._pooled_mask, dx)
