"""The NumPy backend: the base class's array expressions, run by NumPy on the CPU."""

from __future__ import annotations

import threading

import numpy
from numpy.lib.stride_tricks import as_strided

from backends import blas_threads
from backends.base import Backend
from backends.workers import Workers, usable_cores

#: Outputs of NumPy's matmul up to this size are computed holding the GIL (its threshold is 500; some margin).
_GIL_KEPT_UP_TO = 1024


class NumpyBackend(Backend):
    """Reference CPU backend: the base's array expressions, host-only shortcuts, and the cores shared out: layers
    that cut their batch into blocks run them on :class:`~backends.workers.Workers` (NumPy's loops release the GIL)
    while BLAS stays on the calling thread (:meth:`owning_cores`)."""

    name = "numpy"
    xp = numpy

    def __init__(self):
        self._ones = {}
        self._local = threading.local()
        self.block_threads = usable_cores()
        self._workers: dict[int, Workers] = {}

    @classmethod
    def unavailable_reason(cls, index: int = 0) -> str | None:
        return None

    def limit_threads(self, count: int) -> None:
        super().limit_threads(count)
        self.block_threads = max(1, min(count, usable_cores()))

    def _scratch_for(self, key, shape, dtype, zeroed: bool = False):
        """A scratch array per key, shape and dtype, of the calling thread (the blocks of a batch run side by side),
        filled with zeros when made where ``zeroed``."""
        try:
            cache = self._local.scratch
        except AttributeError:
            cache = self._local.scratch = {}
        slot = (key, shape, dtype)
        scratch = cache.get(slot)
        if scratch is None:
            scratch = cache[slot] = (numpy.zeros if zeroed else numpy.empty)(shape, dtype)
        return scratch

    # ----------------------------------------------------------------- blocks of a batch on every core
    def map_blocks(self, function, count: int) -> None:
        threads = min(self.block_threads, count)
        if threads < 2:
            return super().map_blocks(function, count)
        workers = self._workers.get(threads)
        if workers is None:
            workers = self._workers[threads] = Workers(threads)
        workers.map(lambda item: function(*item), [(index % threads, index) for index in range(count)])

    def owning_cores(self):
        """BLAS on the calling thread for the duration: OpenBLAS's own threads spin for a while after each product
        they share, and beside the block threads that spinning made steps slower, not faster."""
        if self.block_threads < 2:
            return super().owning_cores()
        return blas_threads.one_thread()

    def random_into(self, rng, out) -> None:
        # The draws land in the buffer directly; no temporary (same stream as the base version).
        rng.random(out=out, dtype=out.dtype)

    def take_rows(self, x, index, out):
        # The indices come from a permutation of the rows. NumPy's default bounds-checked mode copies through a
        # buffer when given ``out`` (ten times slower for a batch); "clip" gathers straight into ``out``.
        return self.xp.take(x, index, axis=0, out=out, mode="clip")

    def matmul(self, a, b, out=None):
        # NumPy's matmul keeps the GIL through a product of at most 500 outputs, however long its inner dimension (a
        # kernel gradient of 25 x 6 summed over 25,088 pixels holds it for half a millisecond), so a block thread's
        # kernels waited for the other's product; ``dot`` releases it. For larger outputs matmul releases it too and
        # is the faster of the two (up to 15% at a recurrent step's 64 x 384).
        if (
            out is not None
            and out.size <= _GIL_KEPT_UP_TO
            and a.ndim == b.ndim == 2
            and out.flags.c_contiguous
            and out.dtype == a.dtype == b.dtype
        ):
            return self.xp.dot(a, b, out=out)
        return self.xp.matmul(a, b, out=out)

    def column_sum(self, x, out):
        # A product with a row of ones: BLAS sums a batch's columns three times faster than NumPy's reduction.
        if x.ndim != 2 or not out.flags.c_contiguous or out.dtype != x.dtype:
            return super().column_sum(x, out)
        key = (x.shape[0], x.dtype.str)
        ones = self._ones.get(key)
        if ones is None:
            ones = self._ones[key] = self.xp.ones(x.shape[0], x.dtype)
        return self.xp.dot(ones, x, out=out)

    # ----------------------------------------------------------------- images
    def _padded(self, purpose: str, shape, window, dtype, channels_first: bool = True):
        """A zeroed scratch image of ``shape`` ``(N, H, W, C)`` grown by the window's padding, ``(C, N, H', W')`` or,
        not ``channels_first``, ``(N, H', W', C)``, per purpose, window geometry and thread (the patch extraction
        only ever writes its interior, so its border stays zero)."""
        n, height, width, channels = shape
        w = window
        rows = max(height + w.pad_top, (w.out_h - 1) * w.sh + (w.kh - 1) * w.dh + 1)
        columns = max(width + w.pad_left, (w.out_w - 1) * w.sw + (w.kw - 1) * w.dw + 1)
        key = (purpose, tuple(shape), w.pad_top, w.pad_left)
        padded = (channels, n, rows, columns) if channels_first else (n, rows, columns, channels)
        return self._scratch_for(key, padded, dtype, zeroed=True)

    def im2col(self, x, window, cols):
        # One copy from a strided view of the padded image, channels first (rows of the patches read contiguously).
        if x.dtype != cols.dtype:
            return super().im2col(x, window, cols)
        w = window
        padded = self._padded("patches", x.shape, w, x.dtype)
        padded[:, :, w.pad_top : w.pad_top + x.shape[1], w.pad_left : w.pad_left + x.shape[2]] = x.transpose(3, 0, 1, 2)
        s_c, s_n, s_h, s_w = padded.strides
        shape = (w.kh, w.kw, x.shape[3], x.shape[0], w.out_h, w.out_w)
        cols[...] = as_strided(
            padded, shape, (s_h * w.dh, s_w * w.dw, s_c, s_n, s_h * w.sh, s_w * w.sw), writeable=False
        )
        return cols

    def patches_by_pixel(self, window, channels):
        # Where a window row is a vector's worth of values: pixel by pixel it is one contiguous run of the image
        # row, where patch-major rows run along an output row (LeNet's second convolution: 10 values).
        return window.kw * channels >= 16

    def im2col_by_pixels(self, x, window, cols):
        # One copy from a strided view of the padded image (each window row kw * channels contiguous values):
        # LeNet's second convolution 307 -> 158 us against im2col for 32 images, W7's 32 channels 1016 -> 553 us
        # for 8, and the product with the patches by pixel was up to 25% faster.
        w = window
        if w.dw != 1 or x.dtype != cols.dtype:
            return super().im2col_by_pixels(x, window, cols)
        n, height, width, channels = x.shape
        padded = self._padded("patches by pixel", x.shape, w, x.dtype, channels_first=False)
        padded[:, w.pad_top : w.pad_top + height, w.pad_left : w.pad_left + width] = x
        s_n, s_h, s_w, s_c = padded.strides
        shape = (n, w.out_h, w.out_w, w.kh, w.kw * channels)
        view = as_strided(padded, shape, (s_n, s_h * w.sh, s_w * w.sw, s_h * w.dh, s_c), writeable=False)
        cols.reshape(shape)[...] = view
        return cols

    def col2im(self, cols, window, dx):
        # The base class's sum, accumulated channels first in a padded image (contiguous reads of the patches).
        if cols.dtype != dx.dtype:
            return super().col2im(cols, window, dx)
        w = window
        padded = self._padded("gradient", dx.shape, w, dx.dtype)
        padded[...] = 0
        for p in range(w.kh):
            for q in range(w.kw):
                top, left = p * w.dh, q * w.dw
                rows = slice(top, top + (w.out_h - 1) * w.sh + 1, w.sh)
                columns = slice(left, left + (w.out_w - 1) * w.sw + 1, w.sw)
                padded[:, :, rows, columns] += cols[p, q]
        interior = padded[:, :, w.pad_top : w.pad_top + dx.shape[1], w.pad_left : w.pad_left + dx.shape[2]]
        dx[...] = interior.transpose(1, 2, 3, 0)
        return dx

    def max_pool_forward(self, x, window, out, argmax):
        # Windows inside the image: a knockout over the window's positions in row-major order, pairs at each round,
        # ties to the earlier one (the first position attaining the maximum). Each match is three or four passes
        # over an output-sized array: a 2 x 2 window in ten, where a running maximum and a search for its first
        # position took thirteen (LeNet's pools 16% and 31% faster; the channels, the innermost axis, are few).
        if window.padded or x.dtype != out.dtype:
            return super().max_pool_forward(x, window, out, argmax)
        entrants = list(enumerate(self._pool_views(x, window)))
        match = 0
        while len(entrants) > 1:
            winners = []
            for first in range(0, len(entrants) - 1, 2):
                final = len(entrants) == 2
                value = out if final else self._scratch_for(("pool best", match), out.shape, out.dtype)
                index = argmax if final else self._scratch_for(("pool index", match), out.shape, argmax.dtype)
                winners.append((index, self._match(*entrants[first], *entrants[first + 1], value, index)))
                match += 1
            if len(entrants) % 2:
                winners.append(entrants[-1])  # a bye
            entrants = winners
        if match == 0:  # a window of one position
            numpy.copyto(out, entrants[0][1])
            argmax[...] = 0
        if numpy.isnan(out).any():  # NaN is the maximum, as in PyTorch (rare: keep it simple)
            return super().max_pool_forward(x, window, out, argmax)
        return out

    def _match(self, left_index, left, right_index, right, value, index):
        """``value = max(left, right)`` and ``index`` the index of the one holding it, ``left``'s on ties; an index
        is a window position (a number) or an array of them."""
        right_wins = self._scratch_for("pool right wins", value.shape, bool)
        numpy.greater(right, left, out=right_wins)
        numpy.maximum(left, right, out=value)
        if isinstance(left_index, int) and right_index == left_index + 1:
            numpy.add(right_wins, left_index, out=index, casting="unsafe")
        else:
            numpy.copyto(index, left_index)
            numpy.copyto(index, right_index, where=right_wins)
        return value

    def max_pool_backward(self, dy, argmax, window, dx):
        # Windows that do not overlap: every input pixel receives from one output at most, so no sums.
        w = window
        if w.padded or w.sh < w.kh or w.sw < w.kw or dy.dtype != dx.dtype:
            return super().max_pool_backward(dy, argmax, window, dx)
        if w.out_h * w.sh != dx.shape[1] or w.out_w * w.sw != dx.shape[2]:
            dx[...] = 0  # rows or columns no window reads
        for k, view in enumerate(self._pool_views(dx, w)):
            numpy.multiply(dy, argmax == k, out=view)
        return dx

    @staticmethod
    def _pool_views(x, window):
        """For each window position ``k = p * kw + q``, the pixels of the unpadded image ``x`` it covers."""
        w = window
        views = []
        for p in range(w.kh):
            for q in range(w.kw):
                rows = slice(p, p + (w.out_h - 1) * w.sh + 1, w.sh)
                columns = slice(q, q + (w.out_w - 1) * w.sw + 1, w.sw)
                views.append(x[:, rows, columns, :])
        return views
