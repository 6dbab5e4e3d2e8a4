"""CuPy kernels of :mod:`backends.image_kernels`, one thread per element written, mixed into the CuPy backend.

Every kernel gathers what it writes (no atomics), visiting window positions in the order the array expressions of
the base class add them, so sums round as they do on the CPU. Geometry is passed as int32 scalars and recorded with
the kernel in a CUDA graph (a layer's window never changes).
"""

from __future__ import annotations

import functools

import numpy as np

# Scalars every kernel takes after its arrays: the image, the output grid and the window.
_GEOMETRY = (
    "int32 N, int32 H, int32 W, int32 C, int32 OH, int32 OW, "
    "int32 kh, int32 kw, int32 sh, int32 sw, int32 dh, int32 dw, int32 pt, int32 pl"
)
# Index helpers: an element's (n, row, column, channel) in a channels-last array, and the output (i, j) that reads
# input pixel (h, w) at window position (p, q).
_PREAMBLE = r"""
__device__ void netcore_nhwc(long long t, int rows, int columns, int channels, int* n, int* r, int* c, int* k) {
    *k = t % channels; t /= channels; *c = t % columns; t /= columns; *r = t % rows; *n = t / rows;
}
__device__ bool netcore_output_of(int h, int w, int p, int q, int sh, int sw, int dh, int dw, int pt, int pl,
                                  int OH, int OW, int* i, int* j) {
    int a = h + pt - p * dh, b = w + pl - q * dw;
    if (a < 0 || b < 0 || a % sh != 0 || b % sw != 0) return false;
    *i = a / sh; *j = b / sw;
    return *i < OH && *j < OW;
}
"""


def _geometry(x_shape, out_hw, window) -> tuple:
    """The scalars of ``_GEOMETRY``, as the kernels' int32."""
    return tuple(np.int32(v) for v in (*x_shape, *out_hw, *window.geometry))


class CupyImageKernels:
    """The image kernels of :class:`backends.cupy_backend.CupyBackend`."""

    @functools.cached_property
    def _im2col_kernel(self):
        # ImageKernels.im2col: one thread per patch entry (p, q, c, n, i, j)
        return self.xp.ElementwiseKernel(
            "raw T x, " + _GEOMETRY,
            "T cols",
            """long long t = i;
               int j = t % OW; t /= OW; int oi = t % OH; t /= OH; int n = t % N; t /= N;
               int c = t % C; t /= C; int q = t % kw; int p = t / kw;
               int h = oi * sh + p * dh - pt, w = j * sw + q * dw - pl;
               cols = (h >= 0 && h < H && w >= 0 && w < W) ? x[(((long long)n * H + h) * W + w) * C + c] : (T)0;""",
            "netcore_im2col",
        )

    @functools.cached_property
    def _col2im_kernel(self):
        # ImageKernels.col2im: one thread per input pixel (n, h, w, c), summing the patch entries read from it
        return self.xp.ElementwiseKernel(
            "raw T cols, " + _GEOMETRY,
            "T dx",
            """int n, h, w, c; netcore_nhwc(i, H, W, C, &n, &h, &w, &c);
               T sum = 0; int oi, oj;
               for (int p = 0; p < kh; ++p)
                   for (int q = 0; q < kw; ++q)
                       if (netcore_output_of(h, w, p, q, sh, sw, dh, dw, pt, pl, OH, OW, &oi, &oj))
                           sum += cols[((((long long)(p * kw + q) * C + c) * N + n) * OH + oi) * OW + oj];
               dx = sum;""",
            "netcore_col2im",
            preamble=_PREAMBLE,
        )

    @functools.cached_property
    def _max_pool_kernel(self):
        # ImageKernels.max_pool_forward: one thread per output (n, i, j, c)
        return self.xp.ElementwiseKernel(
            "raw T x, " + _GEOMETRY,
            "T out, int32 argmax",
            """int n, oi, oj, c; netcore_nhwc(i, OH, OW, C, &n, &oi, &oj, &c);
               T best = -(T)INFINITY; int k = 0;
               for (int p = 0; p < kh; ++p) {
                   int h = oi * sh + p - pt;
                   if (h < 0 || h >= H) continue;
                   for (int q = 0; q < kw; ++q) {
                       int w = oj * sw + q - pl;
                       if (w < 0 || w >= W) continue;
                       T v = x[(((long long)n * H + h) * W + w) * C + c];
                       if (v > best || v != v) { best = v; k = p * kw + q; }
                   }
               }
               out = best; argmax = k;""",
            "netcore_max_pool",
            preamble=_PREAMBLE,
        )

    @functools.cached_property
    def _max_pool_backward_kernel(self):
        # ImageKernels.max_pool_backward: one thread per input pixel, summing the outputs whose maximum it was
        return self.xp.ElementwiseKernel(
            "raw T dy, raw int32 argmax, " + _GEOMETRY,
            "T dx",
            """int n, h, w, c; netcore_nhwc(i, H, W, C, &n, &h, &w, &c);
               T sum = 0; int oi, oj;
               for (int p = 0; p < kh; ++p)
                   for (int q = 0; q < kw; ++q)
                       if (netcore_output_of(h, w, p, q, sh, sw, 1, 1, pt, pl, OH, OW, &oi, &oj)) {
                           long long o = (((long long)n * OH + oi) * OW + oj) * C + c;
                           if (argmax[o] == p * kw + q) sum += dy[o];
                       }
               dx = sum;""",
            "netcore_max_pool_backward",
            preamble=_PREAMBLE,
        )

    @functools.cached_property
    def _avg_pool_kernel(self):
        # ImageKernels.avg_pool_forward: one thread per output, the mean over its window's positions in the image
        return self.xp.ElementwiseKernel(
            "raw T x, " + _GEOMETRY,
            "T out",
            """int n, oi, oj, c; netcore_nhwc(i, OH, OW, C, &n, &oi, &oj, &c);
               T sum = 0; int count = 0;
               for (int p = 0; p < kh; ++p) {
                   int h = oi * sh + p - pt;
                   if (h < 0 || h >= H) continue;
                   for (int q = 0; q < kw; ++q) {
                       int w = oj * sw + q - pl;
                       if (w < 0 || w >= W) continue;
                       sum += x[(((long long)n * H + h) * W + w) * C + c]; ++count;
                   }
               }
               out = sum / (T)count;""",
            "netcore_avg_pool",
            preamble=_PREAMBLE,
        )

    @functools.cached_property
    def _avg_pool_backward_kernel(self):
        # ImageKernels.avg_pool_backward: one thread per input pixel, its share of every window it lies in
        return self.xp.ElementwiseKernel(
            "raw T dy, " + _GEOMETRY,
            "T dx",
            """int n, h, w, c; netcore_nhwc(i, H, W, C, &n, &h, &w, &c);
               T sum = 0; int oi, oj;
               for (int p = 0; p < kh; ++p)
                   for (int q = 0; q < kw; ++q)
                       if (netcore_output_of(h, w, p, q, sh, sw, 1, 1, pt, pl, OH, OW, &oi, &oj)) {
                           int rows = 0, columns = 0;
                           for (int a = 0; a < kh; ++a) rows += (oi * sh + a - pt >= 0 && oi * sh + a - pt < H);
                           for (int b = 0; b < kw; ++b) columns += (oj * sw + b - pl >= 0 && oj * sw + b - pl < W);
                           sum += dy[(((long long)n * OH + oi) * OW + oj) * C + c] / (T)(rows * columns);
                       }
               dx = sum;""",
            "netcore_avg_pool_backward",
            preamble=_PREAMBLE,
        )

    # ----------------------------------------------------------------- overrides
    def im2col(self, x, window, cols):
        self._im2col_kernel(x, *_geometry(x.shape, (window.out_h, window.out_w), window), cols)
        return cols

    def col2im(self, cols, window, dx):
        self._col2im_kernel(cols, *_geometry(dx.shape, (window.out_h, window.out_w), window), dx)
        return dx

    def max_pool_forward(self, x, window, out, argmax):
        self._max_pool_kernel(x, *_geometry(x.shape, out.shape[1:3], window), out, argmax)
        return out

    def max_pool_backward(self, dy, argmax, window, dx):
        self._max_pool_backward_kernel(dy, argmax, *_geometry(dx.shape, dy.shape[1:3], window), dx)
        return dx

    def avg_pool_forward(self, x, window, out):
        self._avg_pool_kernel(x, *_geometry(x.shape, out.shape[1:3], window), out)
        return out

    def avg_pool_backward(self, dy, window, dx):
        self._avg_pool_backward_kernel(dy, *_geometry(dx.shape, dy.shape[1:3], window), dx)
        return dx
