"""Numba kernels of :mod:`backends.winograd_kernels` (each docstring names the base method it compiles), in the
base expressions' order of operations (the same bits).

The tile transforms run a row of tiles at a time in two passes through a small scratch row: one along the image's
rows, one along the tile arrays' matrices, whose rows for a row of tiles are one run of ``across * width`` values.
Every inner loop is then long, reads and writes at unsigned offsets from few arrays, and vectorises; a loop per tile
and channel with its 16 values in registers did not (too many arrays for LLVM to prove apart), and ran 2-2.5 times
slower (W7's 32-channel layer, 7 images: input 310 -> 133 us with the padding, output 221 -> 96, output gradient 269
-> 112). The 16 matrices of a tile array are apart by a stride its owner pads off a power of two: 16 streams a power of
two apart fall on the same cache sets (the input transform took four times as long).
"""

from numba import njit, uintp

_KERNEL = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_KERNEL)
def winograd_kernel(kernel, u):
    """WinogradKernels.winograd_kernel (``kernel`` may be any view: the input gradient's is flipped and transposed)."""
    _, _, channels, filters = kernel.shape
    half = kernel.dtype.type(0.5)
    for c in range(channels):
        for k in range(filters):
            for q in range(3):  # G g: rows 0..3 of column q, kept in the first axis of the 4x3 block
                g0, g1, g2 = kernel[0, q, c, k], kernel[1, q, c, k], kernel[2, q, c, k]
                u[q, c, k], u[4 + q, c, k] = g0, (g0 + g1 + g2) * half
                u[8 + q, c, k], u[12 + q, c, k] = (g0 - g1 + g2) * half, g2
            for i in range(4):  # then (G g) G^T along each row, in place
                h0, h1, h2 = u[4 * i, c, k], u[4 * i + 1, c, k], u[4 * i + 2, c, k]
                u[4 * i, c, k], u[4 * i + 1, c, k] = h0, (h0 + h1 + h2) * half
                u[4 * i + 2, c, k], u[4 * i + 3, c, k] = (h0 - h1 + h2) * half, h2


@njit(**_KERNEL)
def winograd_kernel_gradient(m, dkernel):
    """WinogradKernels.winograd_kernel_gradient."""
    _, channels, filters = m.shape
    half = m.dtype.type(0.5)
    for c in range(channels):
        for k in range(filters):
            for p in range(3):  # row p of G^T M, then that row times G
                if p == 0:
                    t0, t1 = (
                        m[0, c, k] + (m[4, c, k] + m[8, c, k]) * half,
                        m[1, c, k] + (m[5, c, k] + m[9, c, k]) * half,
                    )
                    t2, t3 = (
                        m[2, c, k] + (m[6, c, k] + m[10, c, k]) * half,
                        m[3, c, k] + (m[7, c, k] + m[11, c, k]) * half,
                    )
                elif p == 1:
                    t0, t1 = (m[4, c, k] - m[8, c, k]) * half, (m[5, c, k] - m[9, c, k]) * half
                    t2, t3 = (m[6, c, k] - m[10, c, k]) * half, (m[7, c, k] - m[11, c, k]) * half
                else:
                    t0, t1 = (
                        (m[4, c, k] + m[8, c, k]) * half + m[12, c, k],
                        (m[5, c, k] + m[9, c, k]) * half + m[13, c, k],
                    )
                    t2, t3 = (
                        (m[6, c, k] + m[10, c, k]) * half + m[14, c, k],
                        (m[7, c, k] + m[11, c, k]) * half + m[15, c, k],
                    )
                dkernel[p, 0, c, k] = t0 + (t1 + t2) * half
                dkernel[p, 1, c, k] = (t1 - t2) * half
                dkernel[p, 2, c, k] = (t1 + t2) * half + t3


@njit(**_KERNEL)
def winograd_input_rows(x, v, rows, pad_top, pad_left, down, across):
    """WinogradKernels.winograd_input straight from the image ``x`` ``(N, H, W, C)``, a row of tiles at a time:
    ``B^T d`` of the row's four image rows into ``rows`` ``(4, 2 * (across + 1) * C)``, its columns split by parity
    (even ones, then odd ones), so that ``(B^T d) B`` reads each tile's four columns at fixed distances along one run
    of ``across * C`` values, and writes each of ``v``'s 16 matrices (``v`` ``(16, >= tiles, C)``, contiguous) the same
    way: long vectorised loops instead of one per tile and channel."""
    n_images, height, width, channels = x.shape
    zero = x.dtype.type(0)
    C = uintp(channels)
    odd = uintp((across + 1) * channels)  # where the odd columns start in a row of ``rows``
    run = uintp(across * channels)
    planes = v.reshape(16, -1)
    t0 = uintp(0)
    for n in range(n_images):
        for ti in range(down):
            top = 2 * ti - pad_top
            h0, h1, h2, h3 = top, top + 1, top + 2, top + 3
            in0, in1 = 0 <= h0 < height, 0 <= h1 < height
            in2, in3 = 0 <= h2 < height, 0 <= h3 < height
            h0, h1, h2, h3 = max(h0, 0), max(h1, 0), max(h2, 0), max(h3, 0)  # read in bounds, then masked
            h0, h1, h2, h3 = min(h0, height - 1), min(h1, height - 1), min(h2, height - 1), min(h3, height - 1)
            for j in range(2 * across + 2):
                column = j - pad_left
                to = uintp((j % 2) * (across + 1) * channels + (j // 2) * channels)
                if column < 0 or column >= width:
                    for c in range(C):
                        rows[0, to + c] = zero
                        rows[1, to + c] = zero
                        rows[2, to + c] = zero
                        rows[3, to + c] = zero
                    continue
                w = uintp(column)
                for c in range(C):
                    d0 = x[n, h0, w, c] if in0 else zero
                    d1 = x[n, h1, w, c] if in1 else zero
                    d2 = x[n, h2, w, c] if in2 else zero
                    d3 = x[n, h3, w, c] if in3 else zero
                    rows[0, to + c] = d0 - d2
                    rows[1, to + c] = d1 + d2
                    rows[2, to + c] = d2 - d1
                    rows[3, to + c] = d1 - d3
            q0 = t0 * C
            for i in range(4):
                k = uintp(4 * i)
                for u in range(run):
                    a0, a1, a2, a3 = rows[i, u], rows[i, odd + u], rows[i, C + u], rows[i, odd + C + u]
                    q = q0 + u
                    planes[k, q] = a0 - a2
                    planes[k + 1, q] = a1 + a2
                    planes[k + 2, q] = a2 - a1
                    planes[k + 3, q] = a1 - a3
            t0 += uintp(across)


@njit(**_KERNEL)
def winograd_output_rows(m, y, rows, down, across):
    """WinogradKernels.winograd_output a row of tiles at a time: ``A^T M`` of the row's tiles along runs of ``across
    * K`` values of ``m``'s matrices (``m`` ``(16, >= tiles, K)``, contiguous) into ``rows`` ``(2, 4, across * K)``,
    then each tile's 2 x 2 outputs from its four columns."""
    n_images, out_h, out_w, filters = y.shape
    K = uintp(filters)
    run = uintp(across * filters)
    planes = m.reshape(16, -1)
    t0 = uintp(0)
    for n in range(n_images):
        for ti in range(down):
            q0 = t0 * K
            for s in range(4):
                for u in range(run):
                    q = q0 + u
                    rows[0, s, u] = planes[s, q] + planes[4 + s, q] + planes[8 + s, q]
                    rows[1, s, u] = planes[4 + s, q] - planes[8 + s, q] - planes[12 + s, q]
            for a in range(2):
                h = 2 * ti + a
                if h >= out_h:
                    continue
                for tj in range(across):
                    w, o = 2 * tj, uintp(tj * filters)
                    for k in range(K):
                        y[n, h, w, k] = rows[a, 0, o + k] + rows[a, 1, o + k] + rows[a, 2, o + k]
                    if w + 1 < out_w:
                        for k in range(K):
                            y[n, h, w + 1, k] = rows[a, 1, o + k] - rows[a, 2, o + k] - rows[a, 3, o + k]
            t0 += uintp(across)


@njit(**_KERNEL)
def winograd_output_gradient_rows(dy, z, rows, down, across):
    """WinogradKernels.winograd_output_gradient a row of tiles at a time: ``A dY`` of the row's two gradient rows
    into ``rows`` ``(4, 2, across * K)``, columns split by parity, then ``(A dY) A^T`` along runs of ``across * K``
    values into each of ``z``'s matrices (``z`` ``(16, >= tiles, K)``, contiguous)."""
    n_images, out_h, out_w, filters = dy.shape
    zero = dy.dtype.type(0)
    K = uintp(filters)
    run = uintp(across * filters)
    planes = z.reshape(16, -1)
    t0 = uintp(0)
    for n in range(n_images):
        for ti in range(down):
            h0 = 2 * ti
            lower = h0 + 1 < out_h
            h1 = h0 + 1 if lower else h0  # read in bounds, then masked
            for j in range(2 * across):
                b, o = j % 2, uintp((j // 2) * filters)
                if j >= out_w:
                    for k in range(K):
                        rows[0, b, o + k] = zero
                        rows[1, b, o + k] = zero
                        rows[2, b, o + k] = zero
                        rows[3, b, o + k] = -zero
                    continue
                for k in range(K):
                    y0 = dy[n, h0, j, k]
                    y1 = dy[n, h1, j, k] if lower else zero
                    rows[0, b, o + k] = y0
                    rows[1, b, o + k] = y0 + y1
                    rows[2, b, o + k] = y0 - y1
                    rows[3, b, o + k] = -y1
            q0 = t0 * K
            for i in range(4):
                k4 = uintp(4 * i)
                for u in range(run):
                    v0, v1 = rows[i, 0, u], rows[i, 1, u]
                    q = q0 + u
                    planes[k4, q] = v0
                    planes[k4 + 1, q] = v0 + v1
                    planes[k4 + 2, q] = v0 - v1
                    planes[k4 + 3, q] = -v1
            t0 += uintp(across)
