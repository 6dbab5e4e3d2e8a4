"""Numba kernels of :mod:`backends.winograd_kernels` (each docstring names the base method it compiles).

Each loops over the tiles with the channels (or filters) innermost, the 16 values of a tile's 4x4 block held in
registers, in the base expressions' order of operations. Indices are unsigned so that the inner loops vectorise. The
16 matrices of a tile array are apart by a stride its owner pads off a power of two: 16 streams a power of two apart
fall on the same cache sets (W7's input transform 26 -> 6 ms for 64 images).
"""

from numba import njit, uintp

_KERNEL = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_KERNEL)
def winograd_input(padded, v, down, across):
    """WinogradKernels.winograd_input, from the zero-padded image ``(N, 2 * down + 2, 2 * across + 2, C)``."""
    n_images, _, _, channels = padded.shape
    t = uintp(0)
    for n in range(n_images):
        for ti in range(down):
            for tj in range(across):
                h, w = uintp(2 * ti), uintp(2 * tj)
                for cc in range(channels):
                    c = uintp(cc)
                    d00, d01, d02, d03 = (
                        padded[n, h, w, c],
                        padded[n, h, w + 1, c],
                        padded[n, h, w + 2, c],
                        padded[n, h, w + 3, c],
                    )
                    d10, d11, d12, d13 = (
                        padded[n, h + 1, w, c],
                        padded[n, h + 1, w + 1, c],
                        padded[n, h + 1, w + 2, c],
                        padded[n, h + 1, w + 3, c],
                    )
                    d20, d21, d22, d23 = (
                        padded[n, h + 2, w, c],
                        padded[n, h + 2, w + 1, c],
                        padded[n, h + 2, w + 2, c],
                        padded[n, h + 2, w + 3, c],
                    )
                    d30, d31, d32, d33 = (
                        padded[n, h + 3, w, c],
                        padded[n, h + 3, w + 1, c],
                        padded[n, h + 3, w + 2, c],
                        padded[n, h + 3, w + 3, c],
                    )
                    a0, a1, a2, a3 = d00 - d20, d01 - d21, d02 - d22, d03 - d23  # B^T d, row by row
                    b0, b1, b2, b3 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
                    e0, e1, e2, e3 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
                    f0, f1, f2, f3 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
                    v[0, t, c], v[1, t, c], v[2, t, c], v[3, t, c] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
                    v[4, t, c], v[5, t, c], v[6, t, c], v[7, t, c] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
                    v[8, t, c], v[9, t, c], v[10, t, c], v[11, t, c] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
                    v[12, t, c], v[13, t, c], v[14, t, c], v[15, t, c] = f0 - f2, f1 + f2, f2 - f1, f1 - f3
                t += uintp(1)


@njit(**_KERNEL)
def winograd_output(m, y, down, across):
    """WinogradKernels.winograd_output."""
    n_images, out_h, out_w, filters = y.shape
    t = uintp(0)
    for n in range(n_images):
        for ti in range(down):
            for tj in range(across):
                h, w = uintp(2 * ti), uintp(2 * tj)
                lower, right = 2 * ti + 1 < out_h, 2 * tj + 1 < out_w
                for kk in range(filters):
                    k = uintp(kk)
                    r00 = m[0, t, k] + m[4, t, k] + m[8, t, k]  # A^T M, row by row
                    r01 = m[1, t, k] + m[5, t, k] + m[9, t, k]
                    r02 = m[2, t, k] + m[6, t, k] + m[10, t, k]
                    r03 = m[3, t, k] + m[7, t, k] + m[11, t, k]
                    r10 = m[4, t, k] - m[8, t, k] - m[12, t, k]
                    r11 = m[5, t, k] - m[9, t, k] - m[13, t, k]
                    r12 = m[6, t, k] - m[10, t, k] - m[14, t, k]
                    r13 = m[7, t, k] - m[11, t, k] - m[15, t, k]
                    y[n, h, w, k] = r00 + r01 + r02
                    if right:
                        y[n, h, w + 1, k] = r01 - r02 - r03
                    if lower:
                        y[n, h + 1, w, k] = r10 + r11 + r12
                        if right:
                            y[n, h + 1, w + 1, k] = r11 - r12 - r13
                t += uintp(1)


@njit(**_KERNEL)
def winograd_output_gradient(dy, z, down, across):
    """WinogradKernels.winograd_output_gradient."""
    n_images, out_h, out_w, filters = dy.shape
    zero = dy.dtype.type(0)
    t = uintp(0)
    for n in range(n_images):
        for ti in range(down):
            for tj in range(across):
                h, w = uintp(2 * ti), uintp(2 * tj)
                lower, right = 2 * ti + 1 < out_h, 2 * tj + 1 < out_w
                for kk in range(filters):
                    k = uintp(kk)
                    y00 = dy[n, h, w, k]
                    y01 = dy[n, h, w + 1, k] if right else zero
                    y10 = dy[n, h + 1, w, k] if lower else zero
                    y11 = dy[n, h + 1, w + 1, k] if lower and right else zero
                    s0, s1 = y00 + y10, y01 + y11  # A dY, row by row: (y0, y0 + y1, y0 - y1, -y1)
                    u0, u1 = y00 - y10, y01 - y11
                    z[0, t, k], z[1, t, k], z[2, t, k], z[3, t, k] = y00, y00 + y01, y00 - y01, -y01
                    z[4, t, k], z[5, t, k], z[6, t, k], z[7, t, k] = s0, s0 + s1, s0 - s1, -s1
                    z[8, t, k], z[9, t, k], z[10, t, k], z[11, t, k] = u0, u0 + u1, u0 - u1, -u1
                    z[12, t, k], z[13, t, k], z[14, t, k], z[15, t, k] = -y10, -y10 - y11, y11 - y10, y11
                t += uintp(1)


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
