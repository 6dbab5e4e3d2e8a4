"""Layers that only change the shape: free views of the batch, forward and backward."""

from __future__ import annotations

import math

from netcore.errors import ConfigurationError, ShapeError
from netcore.layers.base import Layer


class Flatten(Layer):
    """Each sample as one row, row-major over its axes (height, width, channels for images, as in Keras)."""

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = (math.prod(self.input_shape),)
        return self.output_shape

    def forward(self, x, training):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx):
        return dy.reshape(self.batch_shape(dy.shape[0], self.input_shape)) if need_dx else None


class Reshape(Layer):
    """Each sample reshaped to ``target_shape`` (row-major; one entry may be -1, inferred from the rest)."""

    def __init__(self, target_shape, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        try:
            target = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ConfigurationError(f"Reshape target_shape must be a tuple of ints, got {target_shape!r}") from None
        if not target or any(d == 0 or d < -1 for d in target) or target.count(-1) > 1:
            raise ConfigurationError(
                f"Reshape target_shape needs positive sizes and at most one -1, got {tuple(target_shape)}"
            )
        self.target_shape = target

    def build(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size:
            raise ShapeError(
                f"{self.name}: cannot reshape samples of shape {tuple(input_shape)} ({size} values) to "
                f"{self.target_shape}"
            )
        self.input_shape, self.output_shape = tuple(input_shape), shape
        return shape

    def config(self):
        return {"target_shape": list(self.target_shape), **super().config()}

    def forward(self, x, training):
        return x.reshape(self.batch_shape(x.shape[0]))

    def backward(self, dy, need_dx):
        return dy.reshape(self.batch_shape(dy.shape[0], self.input_shape)) if need_dx else None
