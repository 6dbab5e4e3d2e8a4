"""Pooling over channels-last images: the maximum or the mean of each window, per channel; and their global forms,
one value per channel over the whole image."""

from __future__ import annotations

import math

from backends.image_kernels import Window
from netcore.layers.base import InBlocks, Layer, pair
from netcore.layers.convolution import channels_last, image_shape, padding_name


class _Pooling2D(InBlocks, Layer):
    """Shared by max and average pooling: Keras's ``pool_size=2``, ``strides=None`` (the pool size) and
    ``padding="valid"`` or ``"same"`` (padded positions are left out of the maximum and of the mean)."""

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", data_format=None, name=None, trainable=True):
        super().__init__(name, trainable)
        owner = type(self).__name__
        self.pool_size = pair(owner, "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else pair(owner, "strides", strides)
        self.padding = padding_name(owner, padding)
        channels_last(owner, data_format)
        self.window: Window | None = None

    def build(self, input_shape):
        height, width, channels = image_shape(self, input_shape)
        self.window = self._window(height, width)
        self.input_shape = (height, width, channels)
        self.output_shape = (self.window.out_h, self.window.out_w, channels)
        return self.output_shape

    def _window(self, height: int, width: int) -> Window:
        return Window.of((height, width), self.pool_size, self.strides, (1, 1), self.padding, owner=self.name)

    def config(self):
        return {
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            **super().config(),
        }

    def _dx(self, dy):
        return self.buffer("dx", self.batch_shape(dy.shape[0], self.input_shape), dy.dtype)

    #: Fewest input values worth handing a block to another thread on its own: pooling is one quick pass, and
    #: handing over costs tens of microseconds (LeNet's second pooling, 102,400 values, took 0.09 ms split against
    #: 0.03 whole). In a chain of layers run in blocks it takes the chain's blocks at no extra cost.
    min_split_size = 1 << 17

    def block_count(self, n: int, dtype) -> int:
        large = n * math.prod(self.input_shape) >= self.min_split_size
        return self.backend.block_threads if large else 1

    @staticmethod
    def _each(blocks: list[slice], pool):
        """``run(lane, index)`` for :class:`InBlocks`: ``pool(images)`` on the images of ``blocks[index]``."""
        return lambda lane, index: pool(blocks[index])


class MaxPooling2D(_Pooling2D):
    """The maximum of each window, per channel; its gradient goes to the input the maximum came from (the first
    one on ties, as in PyTorch)."""

    #: It can apply the bias and ReLU of a convolution before it (``forward_blocks``'s ``bias_relu``).
    takes_bias_relu = True

    def forward_blocks(self, x, training, blocks, bias_relu=None):
        """With ``bias_relu`` (a convolution's :meth:`~netcore.layers.convolution.Conv2D.bias_relu`), ``x`` is that
        convolution's product, and the pooling applies its bias and ReLU as it reads it (one pass over the
        convolution's output instead of two); its gradient is then the product's."""
        backend, window = self.backend, self.window
        shape = (x.shape[0], window.out_h, window.out_w, self.n_in)
        out = self.buffer("y", shape, x.dtype)
        argmax = self.buffer("argmax", shape, "int32")
        bias, relu = (None, False) if bias_relu is None else bias_relu  # none: the plain max-pooling
        self._pooled = (out, argmax, relu)
        return out, self._each(
            blocks, lambda b: backend.max_pool_bias_relu_forward(x[b], bias, relu, window, out[b], argmax[b])
        )

    def backward_blocks(self, dy, need_dx, blocks):
        if not need_dx:
            return None, None, _nothing
        backend, window = self.backend, self.window
        dx, (out, argmax, relu) = self._dx(dy), self._pooled
        unpool = self._each(
            blocks, lambda b: backend.max_pool_relu_backward(dy[b], argmax[b], out[b], relu, window, dx[b])
        )
        return dx, unpool, _nothing


class AveragePooling2D(_Pooling2D):
    """The mean of each window, per channel (with ``padding="same"``, of the positions inside the image)."""

    def forward_blocks(self, x, training, blocks):
        shape = (x.shape[0], self.window.out_h, self.window.out_w, self.n_in)
        out = self.buffer("y", shape, x.dtype)
        return out, self._each(blocks, lambda b: self.backend.avg_pool_forward(x[b], self.window, out[b]))

    def backward_blocks(self, dy, need_dx, blocks):
        if not need_dx:
            return None, None, _nothing
        dx = self._dx(dy)
        return dx, self._each(blocks, lambda b: self.backend.avg_pool_backward(dy[b], self.window, dx[b])), _nothing


def _nothing() -> None:
    """What is left to do after pooling's blocks: nothing (it has no weights to sum)."""


class _GlobalPooling2D(Layer):
    """One value per channel over the whole image: a pooling window as large as the image. ``keepdims=True``
    keeps the output as a ``(1, 1, channels)`` image."""

    pooling: type[_Pooling2D] = _Pooling2D
    splits_batch = True

    def __init__(self, data_format=None, keepdims: bool = False, name=None, trainable=True):
        super().__init__(name, trainable)
        channels_last(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        height, width, channels = image_shape(self, input_shape)
        self.pool = self.pooling(pool_size=(height, width), name=self.name)
        self.pool.build((height, width, channels))
        self.input_shape = (height, width, channels)
        self.output_shape = (1, 1, channels) if self.keepdims else (channels,)
        return self.output_shape

    def bind(self, backend, params, grads, state, owner=None):
        super().bind(backend, params, grads, state, owner)
        self.pool.bind(backend, params, grads, state, owner)

    def config(self):
        return {"keepdims": self.keepdims, **super().config()}

    def forward(self, x, training):
        return self.pool.forward(x, training).reshape(self.batch_shape(x.shape[0]))

    def backward(self, dy, need_dx):
        return self.pool.backward(dy.reshape(dy.shape[0], 1, 1, self.n_in), need_dx)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over the image: ``(batch, h, w, c) -> (batch, c)``."""

    pooling = AveragePooling2D


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum of each channel over the image: ``(batch, h, w, c) -> (batch, c)``."""

    pooling = MaxPooling2D
