"""The numba backend's Winograd convolutions: the transforms of :mod:`backends.winograd_kernels` as compiled calls
(:mod:`backends._numba_winograd_kernels`), mixed into :class:`backends.numba_backend.NumbaBackend`."""

from __future__ import annotations

from numpy.lib.stride_tricks import as_strided

from backends.winograd_kernels import tile_counts

_winograd_kernels = None


def _load_winograd_kernels():
    """The Winograd transforms compile on first use of a 3x3 convolution wide enough to take them."""
    global _winograd_kernels
    if _winograd_kernels is None:
        from backends import _numba_winograd_kernels

        _winograd_kernels = _numba_winograd_kernels
    return _winograd_kernels


def _planes(tiles):
    """A tile array ``(16, tiles, width)`` whose rows are contiguous as the contiguous ``(16, rows, width)`` array of
    its 16 matrices with the rows between them (the compiled transforms index them as one run per matrix); None for
    other layouts."""
    item, (plane, row, column) = tiles.itemsize, tiles.strides
    if column != item or row != tiles.shape[2] * item or row == 0 or plane % row:
        return None
    return as_strided(tiles, (16, plane // row, tiles.shape[2]), tiles.strides)


class NumbaWinogradKernels:
    """Overrides of :class:`backends.winograd_kernels.WinogradKernels`; scratch comes from the NumPy backend's
    ``_scratch_for``."""

    #: With fewer input channels the 16 products are too narrow to outweigh the transforms (W7's step 182 -> 130 ms:
    #: its 32- and 64-channel convolutions; see ``convolves_by_winograd`` for the rule and its measurements).
    winograd_from_channels = 8

    def winograd_kernel(self, kernel, u):
        if kernel.dtype != u.dtype:
            return super().winograd_kernel(kernel, u)
        _load_winograd_kernels().winograd_kernel(kernel, u)
        return u

    def winograd_kernel_gradient(self, m, dkernel):
        if m.dtype != dkernel.dtype:
            return super().winograd_kernel_gradient(m, dkernel)
        _load_winograd_kernels().winograd_kernel_gradient(m, dkernel)
        return dkernel

    def _tile_rows(self, tiles, image, shape):
        """``(planes, rows)`` for a compiled transform between ``tiles`` and ``image``: the tile array as one
        contiguous array of its 16 matrices and this thread's scratch row of ``shape``; None where the kernels do not
        apply (another layout of the tiles, a strided image, mixed dtypes)."""
        planes = _planes(tiles)
        if planes is None or tiles.dtype != image.dtype or not image.flags.c_contiguous:
            return None
        return planes, self._scratch_for("winograd rows", shape, image.dtype)

    def winograd_input(self, x, pad_top, pad_left, out_h, out_w, v):
        down, across = tile_counts(out_h, out_w)
        compiled = self._tile_rows(v, x, (4, 2 * (across + 1) * x.shape[3]))
        if compiled is None:
            return super().winograd_input(x, pad_top, pad_left, out_h, out_w, v)
        planes, rows = compiled
        _load_winograd_kernels().winograd_input_rows(x, planes, rows, pad_top, pad_left, down, across)
        return v

    def winograd_output(self, m, y):
        down, across = tile_counts(*y.shape[1:3])
        compiled = self._tile_rows(m, y, (2, 4, across * y.shape[3]))
        if compiled is None:
            return super().winograd_output(m, y)
        _load_winograd_kernels().winograd_output_rows(compiled[0], y, compiled[1], down, across)
        return y

    def winograd_output_gradient(self, dy, z):
        down, across = tile_counts(*dy.shape[1:3])
        compiled = self._tile_rows(z, dy, (4, 2, across * dy.shape[3]))
        if compiled is None:
            return super().winograd_output_gradient(dy, z)
        _load_winograd_kernels().winograd_output_gradient_rows(dy, compiled[0], compiled[1], down, across)
        return z
