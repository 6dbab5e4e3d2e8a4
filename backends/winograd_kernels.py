"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 convolution at stride 1 with 2.25 times fewer multiplications.

Each 2x2 block of output pixels (a *tile*) is computed from the 4x4 block of input pixels above it: the input block
``d`` is transformed to ``B^T d B``, the kernel ``g`` to ``G g G^T``, their elementwise product (summed over the
input channels) transformed back by ``A^T (.) A``. Summed over channels, the 16 elementwise products are 16 matrix
products ``(tiles, channels) @ (channels, filters)``, one per position of the 4x4 block, in place of the patches'
``(pixels, 9 * channels) @ (9 * channels, filters)``: 16 / 4 = 4 multiplications per output pixel and channel pair
where the patches take 9. The transforms are additions (and halvings of the kernel), so in float64 the results agree
with the patches' to about 1e-15 of their magnitude, in float32 to about 1e-6.

The three products of training all take this form: the forward pass, the input gradient (a convolution of the output
gradient with the kernel flipped and transposed, padded by ``2 - pad``) and the kernel gradient
``G^T (sum over tiles of (B^T d B) * (A dz A^T)) G``, 16 products ``(channels, tiles) @ (tiles, filters)`` of the
forward's transformed input and the output gradient's tiles.

The tile arrays are ``(16, tiles, width)``: one matrix per position, so each product reads and writes contiguous rows.
Every kernel here computes in the same order as its compiled overrides, so the backends agree to the bit.
"""

from __future__ import annotations

import math


def tile_counts(out_h: int, out_w: int) -> tuple[int, int]:
    """Tiles down and across that cover an ``out_h x out_w`` output (the last ones may hang over its edge)."""
    return math.ceil(out_h / 2), math.ceil(out_w / 2)


class WinogradKernels:
    """F(2x2, 3x3) over ``self.xp``; see :mod:`backends.winograd_kernels`."""

    #: A 3x3 convolution at stride 1 takes the Winograd form from this many input channels on (None: never), with
    #: at most ``channels ** 2 / 4`` filters (see :meth:`convolves_by_winograd`). Here never: as array expressions
    #: the transforms are some 50 passes over memory with temporaries (W7's step on the NumPy backend 207 -> 404 ms);
    #: a backend with compiled transforms sets it.
    winograd_from_channels: int | None = None

    def convolves_by_winograd(self, window, channels: int, filters: int) -> bool:
        """Whether a convolution of ``window`` from ``channels`` to ``filters`` should run as F(2x2, 3x3). Its 16
        products have ``channels`` as their inner dimension, the patches' product ``filters`` as its columns: few
        channels starve the first, few filters the second, and the transforms grow with both. Measured on the numba
        backend (a train step, 32 images of 32 x 32): Winograd's form wins where ``4 * filters <= channels ** 2``
        from 8 channels on (16 -> 64 filters 13% faster, 32 -> 4 3.9 times, 8 -> 8 1.8 times), the patches where
        there are more filters (8 -> 32 12% faster, 16 -> 128 even) or fewer channels (3 -> 32 1.9 times)."""
        w, least = window, self.winograd_from_channels
        fits = w.kh == w.kw == 3 and w.sh == w.sw == 1 and w.dh == w.dw == 1
        return fits and least is not None and channels >= least and 4 * filters <= channels * channels

    @staticmethod
    def winograd_tile_count(images: int, out_h: int, out_w: int) -> int:
        """Tiles of ``images`` outputs of ``out_h x out_w`` pixels (the rows of each position's matrix)."""
        down, across = tile_counts(out_h, out_w)
        return images * down * across

    def winograd_kernel(self, kernel, u):
        """``u[4i + j, c, k] = (G g G^T)[i, j]`` for each 3x3 ``g = kernel[:, :, c, k]`` (``kernel`` ``(3, 3, C,
        K)``, any strides), with ``G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]``."""
        half = kernel.dtype.type(0.5)
        rows = _kernel_rows(kernel, half)  # G g: 4 rows of (3, C, K)
        for i, row in enumerate(rows):
            for j, value in enumerate(_kernel_rows(row, half)):
                u[4 * i + j] = value
        return u

    def winograd_kernel_gradient(self, m, dkernel):
        """The adjoint of :meth:`winograd_kernel`: ``dkernel[:, :, c, k] = G^T M G`` for each 4x4 ``M = m[:, c,
        k]`` (``m`` ``(16, C, K)``)."""
        half = m.dtype.type(0.5)
        blocks = [m[4 * i : 4 * i + 4] for i in range(4)]
        rows = _kernel_gradient_rows(blocks, half)  # G^T M: 3 rows of (4, C, K)
        for p, row in enumerate(rows):
            for q, value in enumerate(_kernel_gradient_rows(list(row), half)):
                dkernel[p, q] = value
        return dkernel

    def winograd_input(self, x, pad_top: int, pad_left: int, out_h: int, out_w: int, v):
        """``v[4r + s, t, c] = (B^T d B)[r, s]`` for the 4x4 input block ``d`` of each tile ``t`` of an ``out_h x
        out_w`` output (``t`` in row-major order of image, tile row, tile column), read from ``x`` ``(N, H, W, C)``
        shifted down by ``pad_top`` and right by ``pad_left`` with zeros around; ``B^T = [[1, 0, -1, 0], [0, 1, 1,
        0], [0, -1, 1, 0], [0, 1, 0, -1]]``."""
        padded = self._winograd_image(x, pad_top, pad_left, out_h, out_w)
        down, across = tile_counts(out_h, out_w)
        channels = x.shape[3]

        def block(r, s):  # d[r, s] of every tile: (N, down, across, C)
            return padded[:, r : r + 2 * down : 2, s : s + 2 * across : 2, :]

        rows = [_input_rows([block(r, s) for r in range(4)]) for s in range(4)]  # rows[s][r] = (B^T d)[r, s]
        for r in range(4):
            for s, value in enumerate(_input_rows([rows[col][r] for col in range(4)])):
                v[4 * r + s] = value.reshape(-1, channels)
        return v

    def _winograd_image(self, x, pad_top, pad_left, out_h, out_w):
        """``x`` shifted by the padding into zeros of the ``(N, 2 * down + 2, 2 * across + 2, C)`` its tiles read."""
        down, across = tile_counts(out_h, out_w)
        n, height, width, channels = x.shape
        padded = self.xp.zeros((n, 2 * down + 2, 2 * across + 2, channels), x.dtype)
        rows, columns = min(height, padded.shape[1] - pad_top), min(width, padded.shape[2] - pad_left)
        padded[:, pad_top : pad_top + rows, pad_left : pad_left + columns] = x[:, :rows, :columns]
        return padded

    def winograd_output(self, m, y):
        """``y``'s 2x2 block of each tile = ``A^T M A`` for its 4x4 ``M = m[:, t, k]`` (``m`` ``(16, tiles, K)``,
        ``y`` ``(N, out_h, out_w, K)``; a tile's pixels past the edge are dropped); ``A^T = [[1, 1, 1, 0], [0, 1,
        -1, -1]]``."""
        n, out_h, out_w, filters = y.shape
        down, across = tile_counts(out_h, out_w)
        planes = [m[k].reshape(n, down, across, filters) for k in range(16)]
        columns = [_output_rows(planes[s::4]) for s in range(4)]  # columns[s][a] = (A^T M)[a, s]
        for a in range(2):
            for b, value in enumerate(_output_rows([column[a] for column in columns])):
                height, width = len(range(a, out_h, 2)), len(range(b, out_w, 2))
                y[:, a::2, b::2] = value[:, :height, :width]
        return y

    def winograd_output_gradient(self, dy, z):
        """The tiles of an output gradient for the kernel gradient: ``z[4i + j, t, k] = (A dY A^T)[i, j]`` for each
        tile's 2x2 ``dY`` of ``dy`` ``(N, out_h, out_w, K)`` (zeros past the edge)."""
        n, out_h, out_w, filters = dy.shape
        down, across = tile_counts(out_h, out_w)
        padded = self.xp.zeros((n, 2 * down, 2 * across, filters), dy.dtype)
        padded[:, :out_h, :out_w] = dy
        rows = _gradient_rows([padded[:, a::2] for a in range(2)])  # A dY: 4 rows of (N, down, 2 * across, K)
        for i, row in enumerate(rows):
            for j, value in enumerate(_gradient_rows([row[:, :, b::2] for b in range(2)])):
                z[4 * i + j] = value.reshape(-1, filters)
        return z


def _kernel_rows(g, half):
    """``G g`` along the first axis of ``g`` (3 rows in, 4 out)."""
    return [g[0], (g[0] + g[1] + g[2]) * half, (g[0] - g[1] + g[2]) * half, g[2]]


def _kernel_gradient_rows(m, half):
    """``G^T m`` along a list of 4 rows (3 out)."""
    return [m[0] + (m[1] + m[2]) * half, (m[1] - m[2]) * half, (m[1] + m[2]) * half + m[3]]


def _input_rows(d):
    """``B^T d`` along a list of 4 rows."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _output_rows(m):
    """``A^T m`` along a list of 4 rows (2 out)."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def _gradient_rows(y):
    """``A y`` along a list of 2 rows (4 out)."""
    return [y[0], y[0] + y[1], y[0] - y[1], -y[1]]
