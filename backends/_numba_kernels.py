"""Numba kernels of :mod:`backends.numba_backend`; each docstring names the base method whose formula it fuses.

Only imported on first use of the numba backend. Each call is serial (several run side by side on the backend's
block threads, each on its own block of a batch). They run at memory speed because they vectorise:
scalars arrive cast to the arrays' dtype (float32 loops stay in float32 lanes), and ``error_model="numpy"`` drops
the division-by-zero checks that otherwise stop LLVM from vectorising a loop (eight times slower).
"""

import math

import numpy as np
from numba import njit, uintp

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_C = 0.044715

_KERNEL = dict(cache=True, nogil=True, error_model="numpy")


@njit(cache=True, inline="always")
def _sigmoid(t):
    """ActivationKernels._sigmoid: ``exp`` only ever sees ``-|t|``; both halves are computed and one selected (a
    branch on the sign mispredicts on every other value and costs more than the arithmetic)."""
    e = math.exp(-abs(t))
    p = 1.0 / (1.0 + e)
    return p if t >= 0 else e * p


@njit(cache=True, inline="always")
def _tanh(t):
    """``tanh`` through one ``exp`` of ``-2|t|``: five times faster than the C library's ``tanh`` (a scalar call
    either way: Numba's LLVM vectorises neither), within one rounding of it near 0 and exact in the tails."""
    e = math.exp(-2.0 * abs(t))
    magnitude = (1.0 - e) / (1.0 + e)
    return magnitude if t >= 0 else -magnitude


@njit(cache=True, inline="always")
def _activate_row(z, out, kind, alpha):
    """One row of ActivationKernels._<kind>_forward."""
    c = z.shape[0]
    if kind == 0:
        for j in range(c):
            out[j] = z[j]
    elif kind == 1:
        for j in range(c):
            out[j] = 0 if z[j] <= 0 else z[j]  # NaN stays NaN, as np.maximum and PyTorch's relu keep it
    elif kind == 2:
        for j in range(c):
            out[j] = z[j] if z[j] > 0 else alpha * z[j]
    elif kind == 3:
        for j in range(c):
            out[j] = z[j] if z[j] > 0 else alpha * math.expm1(z[j])
    elif kind == 4:
        for j in range(c):
            out[j] = _sigmoid(z[j])
    elif kind == 5:
        for j in range(c):
            out[j] = _tanh(z[j])
    elif kind == 6:
        for j in range(c):
            out[j] = max(z[j], 0.0) + math.log1p(math.exp(-abs(z[j])))
    elif kind == 7:
        for j in range(c):
            out[j] = 0.5 * z[j] * math.erfc(-z[j] * _INV_SQRT_2)
    else:
        for j in range(c):
            t = z[j]
            out[j] = t * _sigmoid(2.0 * _SQRT_2_OVER_PI * (t + _GELU_TANH_C * t * t * t))


@njit(**_KERNEL)
def bias_activation(z, b, has_bias, kind, alpha, out, tiled):
    """ActivationKernels.bias_activation: z += b; out = f(z), one pass per block of rows.

    Rows narrower than ``tiled`` (a convolution's few channels) are taken several at a time against the bias
    repeated along ``tiled``, so the inner loop is long enough to vectorise.
    """
    n, c = z.shape
    if c > tiled.shape[0] // 2:  # wide rows vectorise on their own
        for i in range(n):
            if has_bias:
                for j in range(c):
                    z[i, j] += b[j]
            _activate_row(z[i], out[i], kind, alpha)
        return
    width = (tiled.shape[0] // c) * c
    if has_bias:
        for k in range(width):
            tiled[k] = b[k % c]
    flat, flat_out = z.reshape(-1), out.reshape(-1)
    for start in range(0, n * c, width):
        stop = min(start + width, n * c)
        if has_bias:
            first = uintp(start)  # unsigned: a signed index may count from the end, a select that kept this scalar
            for k in range(uintp(stop - start)):
                flat[first + k] += tiled[k]
        _activate_row(flat[start:stop], flat_out[start:stop], kind, alpha)


@njit(**_KERNEL)
def all_finite(x):
    """ArrayOps.all_finite in one pass: ``v - v`` is 0 for a finite value and NaN for NaN and the infinities; an OR
    of comparisons vectorises (a min and a max would take two passes)."""
    flat = x.reshape(-1)
    bad = False
    for i in range(flat.shape[0]):
        bad |= flat[i] - flat[i] != 0
    return not bad


@njit(**_KERNEL)
def bias_softmax(z, b, has_bias, out):
    """ActivationKernels.bias_activation for softmax: z += b; out = exp(z - max) / sum, one pass per row."""
    n, c = z.shape
    for i in range(n):
        if has_bias:
            for j in range(c):
                z[i, j] += b[j]
        mx = z[i, 0]
        for j in range(1, c):
            mx = max(mx, z[i, j])
        s = 0.0
        for j in range(c):
            e = math.exp(z[i, j] - mx)
            out[i, j] = e
            s += e
        for j in range(c):
            out[i, j] = out[i, j] / s


@njit(cache=True, inline="always")
def _incoming(dy, carry, i, j):
    """``dy[i, j]``, plus ``carry[i, j]`` where a carry is given (the test is the same for the whole loop)."""
    return dy[i, j] + carry[i, j] if carry.shape[1] else dy[i, j]


@njit(**_KERNEL)
def activation_backward(dy, carry, y, z, kind, alpha, out):
    """ActivationKernels.activation_backward: out = dy * f'(z), from y (z only for the GELUs). With a ``carry`` of
    dy's width, ``dy + carry`` takes dy's place (RecurrentKernels.rnn_step_backward in one pass); pass a 0-wide one
    otherwise."""
    n, c = dy.shape
    for i in range(n):
        if kind == 0:
            for j in range(c):
                out[i, j] = _incoming(dy, carry, i, j)
        elif kind == 1:
            for j in range(c):
                out[i, j] = _incoming(dy, carry, i, j) if y[i, j] > 0 else 0
        elif kind == 2:
            for j in range(c):
                g = _incoming(dy, carry, i, j)
                out[i, j] = g if y[i, j] > 0 else alpha * g
        elif kind == 3:
            for j in range(c):
                g = _incoming(dy, carry, i, j)
                out[i, j] = g if y[i, j] > 0 else g * (y[i, j] + alpha)
        elif kind == 4:
            for j in range(c):
                out[i, j] = _incoming(dy, carry, i, j) * y[i, j] * (1 - y[i, j])
        elif kind == 5:
            for j in range(c):
                out[i, j] = _incoming(dy, carry, i, j) * (1 - y[i, j] * y[i, j])
        elif kind == 6:
            for j in range(c):
                out[i, j] = -_incoming(dy, carry, i, j) * math.expm1(-y[i, j])
        elif kind == 7:
            for j in range(c):
                t = z[i, j]
                cdf = 0.5 * math.erfc(-t * _INV_SQRT_2)
                out[i, j] = _incoming(dy, carry, i, j) * (cdf + t * math.exp(-0.5 * t * t) * _INV_SQRT_2PI)
        else:
            for j in range(c):
                t = z[i, j]
                s = _sigmoid(2.0 * _SQRT_2_OVER_PI * (t + _GELU_TANH_C * t * t * t))
                slope = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_C * t * t)
                out[i, j] = _incoming(dy, carry, i, j) * (s + 2.0 * t * s * (1.0 - s) * slope)


@njit(**_KERNEL)
def column_sum(x, out, tiled):
    """ArrayOps.column_sum: out[j] = sum_i x[i, j], accumulated row by row so the inner loop vectorises. Rows of up
    to 32 columns (a convolution's few channels) are summed several at a time into ``tiled`` (a run of whole rows),
    whose columns are then added up: one long loop instead of a few dependent chains (LeNet's 25,088 x 6: 53 -> 15
    us)."""
    n, c = x.shape
    for j in range(c):
        out[j] = 0
    if c > 32:
        for i in range(n):
            for j in range(c):
                out[j] += x[i, j]
        return
    width = (tiled.shape[0] // c) * c
    for k in range(width):
        tiled[k] = 0
    flat = x.reshape(-1)
    for start in range(0, n * c, width):
        first = uintp(start)
        for k in range(uintp(min(width, n * c - start))):
            tiled[k] += flat[first + k]
    for k in range(width):
        out[k % c] += tiled[k]


@njit(**_KERNEL)
def scatter_add_rows(src, index, out):
    """ArrayOps.scatter_add_rows for 2-D ``src``, rows added in order (as NumPy's ``add.at``, ten times faster)."""
    out[:] = 0
    c = src.shape[1]
    for k in range(index.shape[0]):
        row = index[k]
        for j in range(c):
            out[row, j] += src[k, j]


@njit(**_KERNEL)
def take_rows(x, index, out):
    """ArrayOps.take_rows for 2-D ``x``: element loops (a row-slice assignment per row builds array views and
    runs 2.5x slower than this, and slower than NumPy's own take)."""
    c = x.shape[1]
    for k in range(index.shape[0]):
        row = index[k]
        for j in range(c):
            out[k, j] = x[row, j]


@njit(**_KERNEL)
def softmax_cross_entropy(z, y, grad, scale, w, smoothing):
    """LossKernels.softmax_cross_entropy for class-index targets, one pass per row."""
    n, c = z.shape
    total = 0.0
    for i in range(n):
        mx = z[i, 0]
        for j in range(1, c):
            mx = max(mx, z[i, j])
        s = 0.0
        sum_z = 0.0
        for j in range(c):
            e = math.exp(z[i, j] - mx)
            grad[i, j] = e
            s += e
            sum_z += z[i, j]
        lse = math.log(s) + mx
        wi = scale * (w[i] if w.shape[0] > 0 else 1.0)
        loss = (1.0 - smoothing) * (lse - z[i, y[i]]) + smoothing * (lse - sum_z / c)
        inv = 1.0 / s
        for j in range(c):
            grad[i, j] = wi * (grad[i, j] * inv - smoothing / c)
        grad[i, y[i]] -= wi * (1.0 - smoothing)
        total += wi * loss
    return total


@njit(**_KERNEL)
def dropout_forward(x, mask, rate, scale, out):
    """LayerKernels.dropout_forward after the draws: mask = (u >= rate) * scale; out = x * mask."""
    for i in range(x.shape[0]):
        keep = scale if mask[i] >= rate else 0
        mask[i] = keep
        out[i] = x[i] * keep


@njit(**_KERNEL)
def scale_maps(x, mask, out):
    """``out = x * mask`` with one factor per image and channel, ``x`` as (images, pixels, channels)."""
    n, pixels, channels = x.shape
    for i in range(n):
        for p in range(pixels):
            for k in range(channels):
                out[i, p, k] = x[i, p, k] * mask[i, k]


@njit(**_KERNEL)
def dropout_maps(x, mask, rate, scale, out):
    """LayerKernels.dropout_forward with one draw per image and channel, ``x`` as (images, pixels, channels)."""
    n, channels = mask.shape
    for i in range(n):
        for k in range(channels):
            mask[i, k] = scale if mask[i, k] >= rate else 0
    scale_maps(x, mask, out)


@njit(**_KERNEL)
def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, out, xhat, inv_std, eps, new_weight, var_scale):
    """LayerKernels.batchnorm_forward_train in four row-wise passes; inv_std holds the mean, then the variance."""
    n, c = x.shape
    keep = 1 - new_weight
    for j in range(c):
        inv_std[j] = 0
    for i in range(n):
        for j in range(c):
            inv_std[j] += x[i, j]
    for j in range(c):
        inv_std[j] /= n
        running_mean[j] = keep * running_mean[j] + new_weight * inv_std[j]
    for i in range(n):
        for j in range(c):
            xhat[i, j] = x[i, j] - inv_std[j]
    for j in range(c):
        inv_std[j] = 0
    for i in range(n):
        for j in range(c):
            inv_std[j] += xhat[i, j] * xhat[i, j]
    for j in range(c):
        var = inv_std[j] / n
        running_var[j] = keep * running_var[j] + new_weight * var_scale * var
        inv_std[j] = 1 / np.sqrt(var + eps)
    for i in range(n):
        for j in range(c):
            h = xhat[i, j] * inv_std[j]
            xhat[i, j] = h
            out[i, j] = gamma[j] * h + beta[j]


@njit(**_KERNEL)
def batchnorm_backward(dy, xhat, inv_std, gamma, dx, dgamma, dbeta, need_dx):
    """LayerKernels.batchnorm_backward: both sums in one pass, then dx in one more."""
    n, c = dy.shape
    for j in range(c):
        dbeta[j] = 0
        dgamma[j] = 0
    for i in range(n):
        for j in range(c):
            dbeta[j] += dy[i, j]
            dgamma[j] += dy[i, j] * xhat[i, j]
    if need_dx:
        for i in range(n):
            for j in range(c):
                dx[i, j] = gamma[j] * inv_std[j] / n * (n * dy[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


@njit(**_KERNEL)
def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """OptimizerKernels.sgd_step."""
    for i in range(p.shape[0]):
        gi = g[i] + weight_decay * p[i]
        if momentum != 0:
            b = gi if first_step else momentum * buf[i] + (1 - dampening) * gi
            buf[i] = b
            gi = gi + momentum * b if nesterov else b
        p[i] -= lr * gi


@njit(**_KERNEL)
def adam_step(p, g, m, v, vmax, beta1, beta2, eps, l2, decay, step_size, inv_bc2_sqrt, amsgrad):
    """OptimizerKernels.adam_step (Adam and AdamW)."""
    one = beta1 / beta1  # a 1 of the arrays' dtype: the literal 1 would promote float32 loops to float64
    for i in range(p.shape[0]):
        pi = p[i] * decay
        gi = g[i] + l2 * pi
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vmax[i], vi)
            vmax[i] = vi
        p[i] = pi - step_size * mi / (np.sqrt(vi) * inv_bc2_sqrt + eps)


@njit(**_KERNEL)
def adagrad_step(p, g, state_sum, clr, weight_decay, eps):
    """OptimizerKernels.adagrad_step."""
    for i in range(p.shape[0]):
        gi = g[i] + weight_decay * p[i]
        s = state_sum[i] + gi * gi
        state_sum[i] = s
        p[i] -= clr * gi / (np.sqrt(s) + eps)


@njit(**_KERNEL)
def rmsprop_step(p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered):
    """OptimizerKernels.rmsprop_step."""
    one = alpha / alpha
    for i in range(p.shape[0]):
        gi = g[i] + weight_decay * p[i]
        s = alpha * square_avg[i] + (one - alpha) * gi * gi
        square_avg[i] = s
        if centered:
            ga = alpha * grad_avg[i] + (one - alpha) * gi
            grad_avg[i] = ga
            s = s - ga * ga
        upd = gi / (np.sqrt(s) + eps)
        if momentum != 0:
            upd = momentum * buf[i] + upd
            buf[i] = upd
        p[i] -= lr * upd


@njit(**_KERNEL)
def adadelta_step(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay):
    """OptimizerKernels.adadelta_step."""
    one = rho / rho
    for i in range(p.shape[0]):
        gi = g[i] + weight_decay * p[i]
        s = rho * square_avg[i] + (one - rho) * gi * gi
        square_avg[i] = s
        d = np.sqrt(acc_delta[i] + eps) / np.sqrt(s + eps) * gi
        acc_delta[i] = rho * acc_delta[i] + (one - rho) * d * d
        p[i] -= lr * d


@njit(**_KERNEL)
def nadam_step(p, g, m, v, beta1, beta2, eps, l2, decay, inv_bc2, g_coef, m_coef):
    """OptimizerKernels.nadam_step."""
    one = beta1 / beta1
    for i in range(p.shape[0]):
        pi = p[i] * decay
        gi = g[i] + l2 * pi
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        denom = np.sqrt(vi * inv_bc2) + eps
        p[i] = pi - g_coef * gi / denom - m_coef * mi / denom
