"""Layers that only move values: free views of the batch (Flatten, Reshape) and zero borders (ZeroPadding2D)."""

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


def _padding_pairs(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras's padding: an int (every side), ``(rows, columns)`` (both sides of each) or ``((top, bottom), (left,
    right))``, as ``((top, bottom), (left, right))`` of non-negative ints."""
    try:
        if isinstance(padding, int):
            pairs = ((padding, padding), (padding, padding))
        elif all(isinstance(p, int) for p in padding):
            (rows, columns) = padding
            pairs = ((rows, rows), (columns, columns))
        else:
            (top, bottom), (left, right) = padding
            pairs = ((top, bottom), (left, right))
        pairs = tuple(tuple(int(v) for v in pair) for pair in pairs)
    except (TypeError, ValueError):
        pairs = ()
    if len(pairs) != 2 or any(v < 0 or isinstance(v, bool) for pair in pairs for v in pair):
        raise ConfigurationError(
            f"ZeroPadding2D padding must be an int, (rows, columns) or ((top, bottom), (left, right)), got {padding!r}"
        )
    return pairs


class ZeroPadding2D(Layer):
    """Rows and columns of zeros around each image (Keras's layer): ``padding=1`` one on every side, ``(2, 1)`` two
    rows above and below and one column left and right, ``((1, 0), (1, 0))`` one row on top and one column left."""

    def __init__(self, padding=(1, 1), data_format=None, name: str | None = None, trainable: bool = True):
        from netcore.layers.convolution import channels_last

        super().__init__(name, trainable)
        channels_last("ZeroPadding2D", data_format)
        self.padding = _padding_pairs(padding)

    def build(self, input_shape):
        from netcore.layers.convolution import image_shape

        height, width, channels = image_shape(self, input_shape)
        (top, bottom), (left, right) = self.padding
        self.input_shape = (height, width, channels)
        self.output_shape = (height + top + bottom, width + left + right, channels)
        return self.output_shape

    def config(self):
        return {"padding": [list(pair) for pair in self.padding], **super().config()}

    def _inside(self):
        (top, _), (left, _) = self.padding
        height, width, _ = self.input_shape
        return slice(None), slice(top, top + height), slice(left, left + width)

    def forward(self, x, training):
        out = self.buffer("y", self.batch_shape(x.shape[0]), x.dtype)
        out[...] = 0
        out[self._inside()] = x
        return out

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        dx = self.buffer("dx", self.batch_shape(dy.shape[0], self.input_shape), dy.dtype)
        dx[...] = dy[self._inside()]
        return dx
