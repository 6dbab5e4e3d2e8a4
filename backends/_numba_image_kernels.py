"""Numba kernels of :mod:`backends.image_kernels` (each docstring names the base method it compiles).

Imported on first use of an image layer on the numba backend. Window geometry arrives as plain ints: ``kh, kw``
(window), ``sh, sw`` (strides), ``dh, dw`` (dilation), ``pt, pl`` (padding on top and left). The inner loops run
along a row of output pixels with a select for the image border rather than a branch, so they vectorise; the
unit-stride case gets its own loop because a constant stride lets LLVM read the row contiguously.
"""

import numpy as np
from numba import njit, uintp

_KERNEL = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_KERNEL)
def _to_channels_first(x, xt):
    """``xt[c, n, h, w] = x[n, h, w, c]``: rows of one channel are contiguous, so patch rows copy without gathers."""
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        for h in range(height):
            for w in range(width):
                for c in range(channels):
                    xt[c, n, h, w] = x[n, h, w, c]


@njit(**_KERNEL)
def _to_channels_last(xt, x):
    """``x[n, h, w, c] = xt[c, n, h, w]``: the inverse of :func:`_to_channels_first`."""
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        for h in range(height):
            for w in range(width):
                for c in range(channels):
                    x[n, h, w, c] = xt[c, n, h, w]


@njit(**_KERNEL)
def im2col(x, cols, xt, kh, kw, sh, sw, dh, dw, pt, pl):
    """ImageKernels.im2col: ``cols[p, q, c, n, i, j] = x[n, i*sh + p*dh - pt, j*sw + q*dw - pl, c]`` or 0.

    ``xt`` is ``x`` channels-first (scratch of shape ``(C, N, H, W)``; ``x`` itself, reshaped, for one channel).
    """
    n_images, height, width, channels = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    zero = x.dtype.type(0)
    if channels > 1:
        _to_channels_first(x, xt)
    for p in range(kh):
        for q in range(kw):
            shift = q * dw - pl
            for c in range(channels):
                for n in range(n_images):
                    for i in range(out_h):
                        h = i * sh + p * dh - pt
                        if h < 0 or h >= height:
                            for j in range(out_w):
                                cols[p, q, c, n, i, j] = zero
                        elif sw == 1:
                            for j in range(out_w):
                                w = j + shift
                                cols[p, q, c, n, i, j] = xt[c, n, h, w] if 0 <= w < width else zero
                        else:
                            for j in range(out_w):
                                w = j * sw + shift
                                cols[p, q, c, n, i, j] = xt[c, n, h, w] if 0 <= w < width else zero


@njit(**_KERNEL)
def im2col_by_pixels(x4, cols6, kh, kw, sh, sw, dh, dw, pt, pl):
    """ImageKernels.im2col_by_pixels: each window row of a pixel's patch copied as ``kw * channels`` contiguous
    values of an image row, at unsigned offsets so that the copy vectorises (LeNet's second convolution: 306 -> 154
    us for 32 images against the compiled im2col; W7's 32 channels at 32 x 32: 7.5 -> 2.0 ms)."""
    n_images, height, width, channels = x4.shape
    out_h, out_w = cols6.shape[1], cols6.shape[2]
    x, cols = x4.reshape(-1), cols6.reshape(-1)  # flat indices: rows of views cost more than the copies
    row, run = width * channels, kw * channels
    zero = x.dtype.type(0)
    o = 0  # cols' offset of (n, i, j, p)
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                left = j * sw - pl
                for p in range(kh):
                    h = i * sh + p * dh - pt
                    start = (n * height + h) * row + left * channels
                    if dw == 1 and 0 <= h < height and left >= 0 and left + kw <= width:
                        source, target = uintp(start), uintp(o)
                        for t in range(uintp(run)):
                            cols[target + t] = x[source + t]
                    else:
                        for q in range(kw):
                            inside = 0 <= h < height and 0 <= left + q * dw < width
                            for c in range(channels):
                                cols[o + q * channels + c] = x[start + q * dw * channels + c] if inside else zero
                    o += run


@njit(**_KERNEL)
def col2im(cols, dx, dxt, kh, kw, sh, sw, dh, dw, pt, pl):
    """ImageKernels.col2im: every patch entry added back to the input pixel it was read from, accumulated
    channels-first in ``dxt`` (scratch ``(C, N, H, W)``, or ``dx`` itself reshaped for one channel)."""
    n_images, height, width, channels = dx.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    dxt[...] = 0
    for p in range(kh):
        for q in range(kw):
            shift = q * dw - pl
            lo = 0  # the output columns whose input column lies inside the image: [lo, hi)
            while lo < out_w and lo * sw + shift < 0:
                lo += 1
            hi = out_w
            while hi > lo and (hi - 1) * sw + shift >= width:
                hi -= 1
            for c in range(channels):
                for n in range(n_images):
                    for i in range(out_h):
                        h = i * sh + p * dh - pt
                        if 0 <= h < height:
                            for j in range(lo, hi):
                                dxt[c, n, h, j * sw + shift] += cols[p, q, c, n, i, j]
    if channels > 1:
        _to_channels_last(dxt, dx)


@njit(inline="always")
def _later_wins(best, best_k, v, k):
    """The running maximum after position ``k`` of value ``v``: strictly greater keeps the first, NaN always wins."""
    wins = (v > best) | (v != v)
    return (v if wins else best), (k if wins else best_k)


@njit(**_KERNEL)
def fold_pixel_patches(d6, dx4, kh, kw, sh, sw, dh, dw, pt, pl):
    """ImageKernels.conv_input_gradient's additions, from the patches' gradient stored pixel by pixel:
    ``dx[n, i*sh + p*dh - pt, j*sw + q*dw - pl, c] += d[n, i, j, p, q, c]``. Each window row adds ``kw * channels``
    contiguous values onto a contiguous stretch of an image row (LeNet's 6 channels: 30, where ``col2im`` adds rows
    of 10 output columns)."""
    n_images, height, width, channels = dx4.shape
    out_h, out_w = d6.shape[1], d6.shape[2]
    dx, d = dx4.reshape(-1), d6.reshape(-1)  # flat indices: rows of views cost more than the additions
    row, run = width * channels, kw * channels
    dx[:] = 0
    o = 0  # d's offset of (n, i, j, p)
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                left = j * sw - pl
                for p in range(kh):
                    h = i * sh + p * dh - pt
                    if 0 <= h < height:
                        start = (n * height + h) * row + left * channels
                        if dw == 1 and left >= 0 and left + kw <= width:
                            # Unsigned indices: a signed one may be negative, counts from the end, and that
                            # select kept this loop scalar (3.4 times slower).
                            first, source = uintp(start), uintp(o)
                            for t in range(uintp(run)):
                                dx[first + t] += d[source + t]
                        else:
                            for q in range(kw):
                                if 0 <= left + q * dw < width:
                                    for c in range(channels):
                                        dx[start + q * dw * channels + c] += d[o + q * channels + c]
                    o += run


@njit(inline="always")
def _as_output(v, b, relu, zero):
    """An input value of the pooling as the convolution before it outputs it (ImageKernels.max_pool_bias_relu_forward):
    plus its bias ``b`` (0 for none), then through ReLU (NaN stays NaN, as in the activation kernels). Scalars only:
    handing the bias array to a helper, even an inlined one, made the loops 20 times slower (reference counts)."""
    v = v + b
    if relu:
        v = zero if v <= zero else v
    return v


@njit(**_KERNEL)
def max_pool_forward(x, out, argmax, bias, relu, kh, kw, sh, sw, pt, pl):
    """ImageKernels.max_pool_forward, or with a ``bias`` (empty for none) and ``relu`` max_pool_bias_relu_forward:
    the running maximum over window positions, one output row at a time, the loop over channels innermost so that
    it vectorises; the common 2 x 2 window takes :func:`_max_pool_2x2`, rows of fewer channels than a vector's lanes
    :func:`_max_pool_narrow`."""
    n_images, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    if kh == kw == sh == sw == 2 and pt == pl == 0 and 2 * out_h <= height and 2 * out_w <= width:
        _max_pool_2x2(x, out, argmax, bias, relu)
        return
    if channels < 16:
        _max_pool_narrow(x, out, argmax, bias, relu, kh, kw, sh, sw, pt, pl)
        return
    zero, has_bias = x.dtype.type(0), bias.shape[0] > 0
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    out[n, i, j, c] = -np.inf
                    argmax[n, i, j, c] = 0
            for p in range(kh):
                h = i * sh + p - pt
                if h < 0 or h >= height:
                    continue
                for q in range(kw):
                    k = p * kw + q
                    for j in range(out_w):
                        w = j * sw + q - pl
                        if 0 <= w < width:
                            for c in range(channels):
                                v = _as_output(x[n, h, w, c], bias[c] if has_bias else zero, relu, zero)
                                out[n, i, j, c], argmax[n, i, j, c] = _later_wins(
                                    out[n, i, j, c], argmax[n, i, j, c], v, k
                                )


@njit(**_KERNEL)
def _max_pool_narrow(x, out, argmax, bias, relu, kh, kw, sh, sw, pt, pl):
    """max_pool_forward for few channels (LeNet's 6): a channel loop that short does not vectorise, and its scalar
    form branches on every comparison (half of them mispredicted on real data, three times slower). Here each
    output's maximum is kept in registers over its window and chosen by selects, then stored once."""
    n_images, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    lowest, zero, has_bias = x.dtype.type(-np.inf), x.dtype.type(0), bias.shape[0] > 0
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    b = bias[c] if has_bias else zero
                    best, best_k = lowest, 0
                    for p in range(kh):
                        h = i * sh + p - pt
                        if 0 <= h < height:
                            for q in range(kw):
                                w = j * sw + q - pl
                                if 0 <= w < width:
                                    v = _as_output(x[n, h, w, c], b, relu, zero)
                                    best, best_k = _later_wins(best, best_k, v, p * kw + q)
                    out[n, i, j, c] = best
                    argmax[n, i, j, c] = best_k


@njit(**_KERNEL)
def _max_pool_2x2(x, out, argmax, bias, relu):
    """max_pool_forward for the common 2 x 2 window at stride 2 inside the image (no padding): the four positions
    written out, in registers, for every channel (LeNet's 6 channels: 2.7 times faster than
    :func:`_max_pool_narrow`; 32 and 64 channels: 10-25% faster than the running maximum in memory)."""
    n_images, out_h, out_w, channels = out.shape
    lowest, zero, has_bias = x.dtype.type(-np.inf), x.dtype.type(0), bias.shape[0] > 0
    for n in range(n_images):
        for i in range(out_h):
            top, bottom = x[n, 2 * i], x[n, 2 * i + 1]
            best_row, k_row = out[n, i], argmax[n, i]
            for j in range(out_w):
                for c in range(channels):
                    b = bias[c] if has_bias else zero
                    v0 = _as_output(top[2 * j, c], b, relu, zero)
                    v1 = _as_output(top[2 * j + 1, c], b, relu, zero)
                    v2 = _as_output(bottom[2 * j, c], b, relu, zero)
                    v3 = _as_output(bottom[2 * j + 1, c], b, relu, zero)
                    best, k = _later_wins(lowest, 0, v0, 0)
                    best, k = _later_wins(best, k, v1, 1)
                    best, k = _later_wins(best, k, v2, 2)
                    best, k = _later_wins(best, k, v3, 3)
                    best_row[j, c] = best
                    k_row[j, c] = k


@njit(**_KERNEL)
def max_pool_backward(dy4, argmax4, dx4, out4, relu, kh, kw, sh, sw, pt, pl):
    """ImageKernels.max_pool_backward, or with ``relu`` max_pool_relu_backward (each gradient times 0 where its
    pooled value ``out`` is not positive): each output's gradient added to the input its maximum came from, at a flat
    offset looked up per window position (an integer division by ``kw`` per value took half the time). A window
    that reaches past the image checks its position: its maximum points into the padding only where every value
    inside was -inf, and the base drops that gradient."""
    n_images, out_h, out_w, channels = dy4.shape
    height, width = dx4.shape[1], dx4.shape[2]
    dy, argmax, dx, out = dy4.reshape(-1), argmax4.reshape(-1), dx4.reshape(-1), out4.reshape(-1)
    zero = dy.dtype.type(0)
    row = width * channels
    offset = np.empty(kh * kw, np.int64)
    for k in range(kh * kw):
        offset[k] = (k // kw) * row + (k % kw) * channels
    dx[:] = 0
    o = 0  # dy's flat index of (n, i, j, 0)
    for n in range(n_images):
        for i in range(out_h):
            top = i * sh - pt
            for j in range(out_w):
                left = j * sw - pl
                start = (n * height + top) * row + left * channels
                inside = top >= 0 and top + kh <= height and left >= 0 and left + kw <= width
                for c in range(channels):
                    k = argmax[o + c]
                    if inside or (0 <= top + k // kw < height and 0 <= left + k % kw < width):
                        g = dy[o + c]
                        dx[start + offset[k] + c] += g if not relu or out[o + c] > 0 else g * zero
                o += channels


@njit(**_KERNEL)
def _window_count(i, j, height, width, kh, kw, sh, sw, pt, pl):
    """Positions of output (i, j)'s window that lie inside the image."""
    rows = 0
    for p in range(kh):
        if 0 <= i * sh + p - pt < height:
            rows += 1
    columns = 0
    for q in range(kw):
        if 0 <= j * sw + q - pl < width:
            columns += 1
    return rows * columns


@njit(**_KERNEL)
def avg_pool_forward(x, out, kh, kw, sh, sw, pt, pl):
    """ImageKernels.avg_pool_forward: the mean over each window's positions inside the image."""
    n_images, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    out[n, i, j, c] = 0
            for p in range(kh):
                h = i * sh + p - pt
                if h < 0 or h >= height:
                    continue
                for q in range(kw):
                    for j in range(out_w):
                        w = j * sw + q - pl
                        if 0 <= w < width:
                            for c in range(channels):
                                out[n, i, j, c] += x[n, h, w, c]
            for j in range(out_w):
                count = _window_count(i, j, height, width, kh, kw, sh, sw, pt, pl)
                for c in range(channels):
                    out[n, i, j, c] /= count


@njit(**_KERNEL)
def avg_pool_backward(dy, dx, kh, kw, sh, sw, pt, pl):
    """ImageKernels.avg_pool_backward: each output's gradient shared among its window's positions in the image."""
    n_images, height, width, channels = dx.shape
    out_h, out_w = dy.shape[1], dy.shape[2]
    dx[...] = 0
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                count = _window_count(i, j, height, width, kh, kw, sh, sw, pt, pl)
                for p in range(kh):
                    h = i * sh + p - pt
                    if h < 0 or h >= height:
                        continue
                    for q in range(kw):
                        w = j * sw + q - pl
                        if 0 <= w < width:
                            for c in range(channels):
                                dx[n, h, w, c] += dy[n, i, j, c] / count


@njit(**_KERNEL)
def _source(index, size, mode):
    """AugmentKernels._source_index for one coordinate: (index inside the image, whether it was inside)."""
    inside = 0 <= index < size
    if mode == 0:  # reflect
        period = index % (2 * size)
        return (2 * size - 1 - period if period >= size else period), inside
    if mode == 1:  # wrap
        return index % size, inside
    return min(max(index, 0), size - 1), inside  # nearest, and constant (masked by the caller)


@njit(**_KERNEL)
def _add_tap(x, out, n, y, w, ty, tx, weight, mode, fill_value):
    """``out[n, y, w, :] += weight * x[n, ty, tx, :]``, the source point mapped by the fill mode."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    iy, inside_y = _source(ty, height, mode)
    ix, inside_x = _source(tx, width, mode)
    outside = mode == 3 and not (inside_y and inside_x)
    for c in range(channels):
        value = fill_value if outside else x[n, iy, ix, c]
        out[n, y, w, c] += weight * value


@njit(**_KERNEL)
def affine_sample(x, a, out, mode, fill_value, nearest):
    """AugmentKernels.affine_sample: each output pixel resampled from its image at ``a[n] @ (x, y, 1)``."""
    n_images, height, width, channels = x.shape
    one = x.dtype.type(1)
    half = x.dtype.type(0.5)
    for n in range(n_images):
        for y in range(height):
            fy = x.dtype.type(y)
            for w in range(width):
                fw = x.dtype.type(w)
                sx = a[n, 0] * fw + a[n, 1] * fy + a[n, 2]
                sy = a[n, 3] * fw + a[n, 4] * fy + a[n, 5]
                for c in range(channels):
                    out[n, y, w, c] = 0
                if nearest:
                    _add_tap(x, out, n, y, w, int(np.floor(sy + half)), int(np.floor(sx + half)), one, mode, fill_value)
                    continue
                y0, x0 = np.floor(sy), np.floor(sx)
                wy, wx = sy - y0, sx - x0
                top, left = int(y0), int(x0)
                _add_tap(x, out, n, y, w, top, left, (one - wy) * (one - wx), mode, fill_value)
                _add_tap(x, out, n, y, w, top, left + 1, (one - wy) * wx, mode, fill_value)
                _add_tap(x, out, n, y, w, top + 1, left, wy * (one - wx), mode, fill_value)
                _add_tap(x, out, n, y, w, top + 1, left + 1, wy * wx, mode, fill_value)
