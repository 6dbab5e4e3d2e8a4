"""Rescaling: pixel values into the range a network trains well on, inside the model (Keras's layer)."""

from __future__ import annotations

from netcore.errors import ConfigurationError
from netcore.layers.base import Layer


class Rescaling(Layer):
    """``y = x * scale + offset`` on input of any shape: ``Rescaling(1 / 255)`` maps pixels in [0, 255] to [0, 1],
    ``Rescaling(1 / 127.5, offset=-1)`` to [-1, 1]."""

    def __init__(self, scale: float, offset: float = 0.0, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        try:
            self.scale, self.offset = float(scale), float(offset)
        except (TypeError, ValueError):
            raise ConfigurationError(f"Rescaling takes numbers, got scale={scale!r}, offset={offset!r}") from None

    def config(self):
        return {"scale": self.scale, "offset": self.offset, **super().config()}

    def forward(self, x, training):
        out = self.buffer("y", x.shape, x.dtype)
        self.backend.xp.multiply(x, self.scale, out=out)
        if self.offset:
            out += self.offset
        return out

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        dy *= self.scale  # dy is this layer's to overwrite
        return dy
