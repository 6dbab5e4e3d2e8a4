"""Kernels of the image layers: patch extraction for convolutions (``im2col``) and its adjoint (``col2im``), max and
average pooling, as array expressions over ``self.xp``.

Images are channels-last ``(batch, height, width, channels)``. A :class:`Window` says where a sliding window reads:
output pixel ``(i, j)`` and window position ``(p, q)`` read input pixel ``(i * sh + p * dh - pad_top,
j * sw + q * dw - pad_left)``; positions outside the image read zero (convolution) or are skipped (pooling).

A convolution is ``im2col`` followed by one matrix product. The patches are stored patch-major, ``(kh, kw, channels,
batch, out_h, out_w)``: a ``(kh * kw * channels, pixels)`` matrix whose rows are written contiguously (one shifted
copy of the image per window position and channel, fast on every device). Its transpose times the kernel ``(kh, kw,
in, out)`` as a ``(kh * kw * in, out)`` matrix gives the output in channels-last order; the gradients are the
products ``patches @ dz`` (kernel) and ``kernel @ dz.T`` followed by ``col2im`` (input). Matrix libraries take the
transposed operand without a copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backends.errors import ConfigurationError

PADDINGS = ("valid", "same")


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window over ``in_h x in_w`` images: its size, strides, dilation and padding."""

    in_h: int
    in_w: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1
    pad_top: int = 0
    pad_left: int = 0
    out_h: int = 0
    out_w: int = 0

    @classmethod
    def of(cls, in_hw, kernel, strides=(1, 1), dilation=(1, 1), padding: str = "valid", owner: str = "window"):
        """The window of a layer, with Keras's output sizes: ``"valid"`` keeps only windows inside the image,
        ``"same"`` gives ``ceil(size / stride)`` outputs, padding split with the smaller half on top and left."""
        (in_h, in_w), (kh, kw), (sh, sw), (dh, dw) = in_hw, kernel, strides, dilation
        span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if padding == "valid":
            if span_h > in_h or span_w > in_w:
                raise ConfigurationError(
                    f"{owner}: its {span_h}x{span_w} window (kernel {kh}x{kw}, dilation {dh}x{dw}) is larger than "
                    f"its {in_h}x{in_w} input; use padding='same' or a smaller window"
                )
            out_h, out_w = (in_h - span_h) // sh + 1, (in_w - span_w) // sw + 1
            pad_top = pad_left = 0
        elif padding == "same":
            out_h, out_w = math.ceil(in_h / sh), math.ceil(in_w / sw)
            pad_top = max((out_h - 1) * sh + span_h - in_h, 0) // 2
            pad_left = max((out_w - 1) * sw + span_w - in_w, 0) // 2
        else:
            raise ConfigurationError(f"{owner}: padding must be one of {PADDINGS}, got {padding!r}")
        return cls(in_h, in_w, kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w)

    @property
    def geometry(self) -> tuple[int, ...]:
        """``(kh, kw, sh, sw, dh, dw, pad_top, pad_left)``: the window as the compiled patch kernels take it."""
        return (self.kh, self.kw, self.sh, self.sw, self.dh, self.dw, self.pad_top, self.pad_left)

    @property
    def pool_geometry(self) -> tuple[int, ...]:
        """``(kh, kw, sh, sw, pad_top, pad_left)``: a pooling window (no dilation) as compiled kernels take it."""
        return (self.kh, self.kw, self.sh, self.sw, self.pad_top, self.pad_left)

    @property
    def size(self) -> int:
        """Positions in the window (``kh * kw``)."""
        return self.kh * self.kw

    @property
    def padded(self) -> bool:
        """Whether some window reaches outside the image (padding on any side)."""
        bottom = (self.out_h - 1) * self.sh + (self.kh - 1) * self.dh + 1 - self.in_h - self.pad_top
        right = (self.out_w - 1) * self.sw + (self.kw - 1) * self.dw + 1 - self.in_w - self.pad_left
        return self.pad_top > 0 or self.pad_left > 0 or bottom > 0 or right > 0

    @property
    def is_identity(self) -> bool:
        """A 1x1 window at stride 1 without padding: the patches are the image itself."""
        return self.kh == self.kw == self.sh == self.sw == 1 and self.pad_top == self.pad_left == 0

    def valid_range(self, axis: int, position: int) -> tuple[int, int, int]:
        """For window position ``position`` along ``axis`` (0: rows, 1: columns): the output indices
        ``[lo, hi)`` whose input index lies inside the image, and the input index of output ``lo``."""
        stride, dilation, pad, size, out = (
            (self.sh, self.dh, self.pad_top, self.in_h, self.out_h)
            if axis == 0
            else (self.sw, self.dw, self.pad_left, self.in_w, self.out_w)
        )
        offset = position * dilation - pad  # input index of output 0
        lo = max(0, -(offset // stride))  # the first output reading at or after input 0
        hi = min(out, (size - 1 - offset) // stride + 1)  # one past the last output reading before input `size`
        return lo, max(lo, hi), lo * stride + offset


class ImageKernels:
    """Convolution patches and pooling over ``self.xp``; see :class:`backends.base.Backend`."""

    #: The most bytes of patches a convolution builds at once: on a CPU a batch whose patch matrix is larger is
    #: convolved a block of images at a time, so its patches are read back from cache, not from memory (a 3x3
    #: convolution of 32 channels at 32x32 has 1.2 MB of patches per image). None: the whole batch at once (GPUs,
    #: where one large product beats many launches).
    patch_block_bytes: int | None = 8 << 20
    #: The most bytes of transformed input tiles a convolution by Winograd's form (:mod:`backends.winograd_kernels`)
    #: keeps from the forward pass to the backward pass for a batch; beyond, each block's are rebuilt there. Kept,
    #: W7's step took 130 -> 122 ms (its widest layer keeps 67 MB for a batch of 128). None: no limit.
    kept_tile_bytes: int | None = 256 << 20

    @staticmethod
    def _positions(window: Window):
        """Each window position ``(p, q)`` that reads inside the image, with the output pixels it contributes to
        and the input pixels it reads, both as ``(rows, columns)`` slices."""
        for p in range(window.kh):
            for q in range(window.kw):
                lo_h, hi_h, start_h = window.valid_range(0, p)
                lo_w, hi_w, start_w = window.valid_range(1, q)
                if hi_h <= lo_h or hi_w <= lo_w:
                    continue  # only padding
                outputs = (slice(lo_h, hi_h), slice(lo_w, hi_w))
                stop_h = start_h + (hi_h - lo_h - 1) * window.sh + 1
                stop_w = start_w + (hi_w - lo_w - 1) * window.sw + 1
                inputs = (slice(start_h, stop_h, window.sh), slice(start_w, stop_w, window.sw))
                yield p, q, outputs, inputs

    # ----------------------------------------------------------------- convolution patches
    def im2col(self, x, window: Window, cols):
        """``cols[p, q, c, n, i, j] = x[n, i*sh + p*dh - pad_top, j*sw + q*dw - pad_left, c]`` (0 outside)."""
        if window.padded:
            cols[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            cols[p, q, :, :, rows, columns] = self.xp.moveaxis(x[:, src_rows, src_columns, :], 3, 0)
        return cols

    def patches_by_pixel(self, window: Window, channels: int) -> bool:
        """Whether a convolution over ``channels`` input channels should take its patches pixel by pixel
        (:meth:`im2col_by_pixels`, a ``(pixels, kh * kw * channels)`` matrix) rather than patch-major
        (:meth:`im2col`). Here never: patch-major rows copy contiguously on every device."""
        return False

    def im2col_by_pixels(self, x, window: Window, cols):
        """The patches pixel by pixel: ``cols[n, i, j, p, q, c] = x[n, i*sh + p*dh - pad_top, j*sw + q*dw -
        pad_left, c]`` (0 outside), the transpose of :meth:`im2col`'s matrix."""
        if window.padded:
            cols[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            cols[:, rows, columns, p, q, :] = x[:, src_rows, src_columns, :]
        return cols

    def col2im(self, cols, window: Window, dx):
        """The adjoint of :meth:`im2col`: ``dx`` is the sum, over every patch entry, of what it was read from."""
        dx[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            dx[:, src_rows, src_columns, :] += self.xp.moveaxis(cols[p, q, :, :, rows, columns], 0, 3)
        return dx

    #: From this many input channels on, :meth:`conv_input_gradient_scratch` asks for the input gradient by window
    #: positions instead of the patches' gradient folded back by :meth:`col2im`: the folding walks rows of
    #: ``width`` values, the per-position sums rows of ``width * channels``. Measured on the numba backend, per block
    #: of 16-32 images: 32 channels at 32x32 6.8 -> 5.0 ms, 64 at 16x16 4.1 -> 3.0 ms; LeNet's 6 at 14x14 0.72 ->
    #: 0.99 ms (25 products of 6 columns each cost more than one of 150 rows).
    input_gradient_by_positions_from = 16

    def conv_input_gradient_scratch(self, pixels: int, window: Window, channels: int):
        """The scratch :meth:`conv_input_gradient` should be given for ``pixels`` output pixels of a convolution over
        ``channels`` input channels, as a shape: ``(pixels, channels)`` (by window positions) or ``(pixels, kh * kw *
        channels)`` (by the patches' gradient stored pixel by pixel); None where the patch-major gradient folded by
        :meth:`col2im` is the faster way here."""
        return (pixels, channels) if channels >= self.input_gradient_by_positions_from else None

    def conv_input_gradient(self, dz, kernel, window: Window, dx, scratch):
        """``dx`` of a convolution from its output gradient ``dz`` ``(pixels, filters)`` and ``kernel`` ``(kh, kw,
        channels, filters)``, without the patch-major gradient :meth:`col2im` folds. With a ``(pixels, channels)``
        ``scratch``, one window position at a time: ``dz @ kernel[p, q].T`` added to the input pixels that position
        read (additions along rows of ``width * channels`` values). With a ``(pixels, kh * kw * channels)`` one, all
        positions in one product, ``dz @ kernel.T`` (each pixel's patch gradient in a row), then
        :meth:`fold_pixel_patches`."""
        n, w = dx.shape[0], window
        if w.size > 1 and scratch.shape[1] == w.size * dx.shape[3]:
            self.matmul(dz, kernel.reshape(-1, kernel.shape[3]).T, out=scratch)
            return self.fold_pixel_patches(scratch.reshape(n, w.out_h, w.out_w, w.kh, w.kw, -1), w, dx)
        per_pixel = scratch.reshape(n, w.out_h, w.out_w, -1)
        dx[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            self.matmul(dz, kernel[p, q].T, out=scratch)
            dx[:, src_rows, src_columns, :] += per_pixel[:, rows, columns, :]
        return dx

    def fold_pixel_patches(self, d, window: Window, dx):
        """The adjoint of patches stored pixel by pixel, ``d`` ``(batch, out_h, out_w, kh, kw, channels)``:
        ``dx[n, i*sh + p*dh - pad_top, j*sw + q*dw - pad_left, c]`` is the sum of the ``d[n, i, j, p, q, c]`` read
        from it."""
        dx[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            dx[:, src_rows, src_columns, :] += d[:, rows, columns, p, q, :]
        return dx

    # ----------------------------------------------------------------- depthwise convolution
    def depthwise_forward(self, cols, kernel, z, scratch):
        """``z[i, c * m + j] = sum_k cols[k, c, i] kernel[k, c, j]``: each channel's patches ``(k, c, i)`` times its
        own filters ``(k, c, m)``, one product per channel (``scratch`` is ``(c, i, m)``), channels-last out."""
        self.xp.matmul(cols.transpose(1, 2, 0), kernel.transpose(1, 0, 2), out=scratch)
        z.reshape(z.shape[0], scratch.shape[0], scratch.shape[2])[...] = scratch.transpose(1, 0, 2)
        return z

    def depthwise_backward(self, cols, kernel, dz, dkernel, dcols, scratch):
        """The gradients of :meth:`depthwise_forward`: ``dkernel`` ``(k, c, m)`` (unless None) and ``dcols`` ``(k, c,
        i)`` (unless None), from ``dz`` ``(i, c * m)``; ``scratch`` is ``(c, i, m)``."""
        channels, _, m = scratch.shape
        scratch[...] = dz.reshape(dz.shape[0], channels, m).transpose(1, 0, 2)
        if dkernel is not None:  # per channel: patches (k, i) @ dz (i, m)
            dkernel.transpose(1, 0, 2)[...] = self.xp.matmul(cols.transpose(1, 0, 2), scratch)
        if dcols is not None:  # per channel: filters (k, m) @ dz.T (m, i)
            dcols.transpose(1, 0, 2)[...] = self.xp.matmul(kernel.transpose(1, 0, 2), scratch.transpose(0, 2, 1))
        return dkernel, dcols

    # ----------------------------------------------------------------- pooling
    def max_pool_forward(self, x, window: Window, out, argmax):
        """``out`` = the maximum over each window (padding excluded); ``argmax`` = its position ``p * kw + q``, the
        first one in row-major order on ties; NaN wins, as in PyTorch (so a NaN is never hidden)."""
        xp = self.xp
        out[...] = -xp.inf
        argmax[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            value = x[:, src_rows, src_columns, :]
            best = out[:, rows, columns, :]
            wins = (value > best) | (value != value)
            best[...] = xp.where(wins, value, best)
            argmax[:, rows, columns, :] = xp.where(wins, p * window.kw + q, argmax[:, rows, columns, :])
        return out

    def max_pool_backward(self, dy, argmax, window: Window, dx):
        """Each output's gradient goes to the input its maximum came from (summed where windows overlap)."""
        dx[...] = 0
        for p, q, (rows, columns), (src_rows, src_columns) in self._positions(window):
            chosen = argmax[:, rows, columns, :] == p * window.kw + q
            dx[:, src_rows, src_columns, :] += dy[:, rows, columns, :] * chosen
        return dx

    #: Whether :meth:`max_pool_bias_relu_forward` costs less than the convolution's own bias and ReLU followed by
    #: :meth:`max_pool_forward`: a model then leaves a convolution's bias and ReLU to the max-pooling that reads its
    #: output (:class:`netcore.models.block_chain.BlockChain`). Here the fused form is those same steps.
    fuses_bias_relu_into_max_pool = False

    def max_pool_bias_relu_forward(self, z, bias, relu: bool, window: Window, out, argmax):
        """:meth:`max_pool_forward` of ``relu(z + bias)`` (of ``z + bias`` where not ``relu``; ``bias`` may be None):
        a convolution's bias and ReLU applied as the pooling after it reads its pre-activation ``z``. The same
        values in the same order as the two steps, so the same maxima, ties and NaN."""
        y = z if bias is None else z + bias
        if relu:
            y = self.xp.maximum(y, 0)
        return self.max_pool_forward(y, window, out, argmax)

    def max_pool_relu_backward(self, dy, argmax, out, relu: bool, window: Window, dx):
        """The gradient of :meth:`max_pool_bias_relu_forward` with respect to ``z`` (and the bias): each output's
        gradient, times 0 where ``relu`` and its pooled value ``out`` is not positive, added to the input its
        maximum came from. The ReLU's derivative at that input is the one at the pooled value (they are equal)."""
        return self.max_pool_backward(dy * (out > 0) if relu else dy, argmax, window, dx)

    def _window_counts(self, window: Window, dtype):
        """How many positions of each output's window lie inside the image, shaped ``(out_h, out_w, 1)``."""
        counts = self.xp.zeros((window.out_h, window.out_w, 1), dtype=dtype)
        for _, _, outputs, _ in self._positions(window):
            counts[outputs] += 1
        return counts

    def avg_pool_forward(self, x, window: Window, out):
        """``out`` = the mean over each window's positions inside the image (Keras's ``"same"``: padding is not
        counted; PyTorch's ``count_include_pad=False``)."""
        out[...] = 0
        for _, _, (rows, columns), (src_rows, src_columns) in self._positions(window):
            out[:, rows, columns, :] += x[:, src_rows, src_columns, :]
        out /= self._window_counts(window, out.dtype)
        return out

    def avg_pool_backward(self, dy, window: Window, dx):
        """Each output's gradient shared equally among its window's positions inside the image."""
        share = dy / self._window_counts(window, dy.dtype)
        dx[...] = 0
        for _, _, (rows, columns), (src_rows, src_columns) in self._positions(window):
            dx[:, src_rows, src_columns, :] += share[:, rows, columns, :]
        return dx
