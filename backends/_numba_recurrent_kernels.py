"""Numba kernels of :mod:`backends.recurrent_kernels` (each docstring names the base method whose formula it fuses).
Imported on first use of a recurrent layer on the numba backend.

The step kernels serve the base's passes, step by step from Python, where a compiled pass does not apply (arrays
of other layouts or dtypes). The backward steps are arithmetic only and fuse into one pass over a step's gates. The
forward steps' sigmoids and tanhs are NumPy's SIMD ``tanh`` (compiled code would call the scalar C library, far
slower), so those kernels are the arithmetic between those calls, in the base expressions' order of operations: the
same bits as the NumPy backend.

The passes (``*_pass``) run every step of a sequence in one call, masks included, the recurrent products through
BLAS from compiled code (SciPy's, as Numba's ``np.dot`` calls it): no Python between steps, and the GIL released for
the whole pass, so blocks of a batch on two threads no longer queue for it at every step (a pass of 50 steps went
from 1.5x to 1.05x its time alone when two ran side by side). Their tanh is :func:`fast_tanh`, a rational function
vectorised by LLVM, within a few units in the last place of NumPy's.
"""

import numpy as np
from numba import njit, types, uintp
from numba.extending import overload

_KERNEL = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_INLINE = dict(error_model="numpy")


# ----------------------------------------------------------------------------------------------- tanh
# tanh(y) from Lambert's continued fraction cut after k terms: y P(y^2) / Q(y^2), exact near 0 and losing accuracy
# with |y|; taken at y = x / 2^d and doubled back d times with tanh(2y) = 2t / (1 + t^2), numerator and denominator
# kept apart so that one division ends it. Inputs so large that tanh rounds to 1 (9.02 in float32, 19.07 in float64)
# give 1 exactly, and those so small that it rounds to x give x (subnormal ones would underflow on the way).
def fast_tanh(x):
    """tanh of a float32 or float64 scalar; compiled code gets the form below, vectorisable (no branch, one
    division), Python NumPy's."""
    return np.tanh(x)


@njit(**_INLINE)
def _tanh32(x):
    """k = 5, d = 2 in float32: at most 4 units in the last place from the correctly rounded value."""
    f = np.float32
    a = abs(x)
    y = min(a, f(9.5)) * f(0.25)
    s = y * y
    p = y * (f(10395.0) + s * (f(1260.0) + s * f(21.0)))
    q = f(10395.0) + s * (f(4725.0) + s * (f(210.0) + s))
    for _ in range(2):
        p, q = f(2.0) * p * q, q * q + p * p
    t = f(1.0) if a > f(9.1) else min(p / q, f(1.0))  # rounding may pass 1 by a unit
    t = -t if x < 0 else t
    return x if a < f(2.0**-12) else t


@njit(**_INLINE)
def _tanh64(x):
    """k = 6, d = 3 in float64: within 8e-16 relative of tanh."""
    a = abs(x)
    y = min(a, 19.5) * 0.125
    s = y * y
    p = y * (135135.0 + s * (17325.0 + s * (378.0 + s)))
    q = 135135.0 + s * (62370.0 + s * (3150.0 + s * 28.0))
    for _ in range(3):
        p, q = 2.0 * p * q, q * q + p * p
    t = 1.0 if a > 19.1 else min(p / q, 1.0)
    t = -t if x < 0 else t
    return x if a < 2.0**-27 else t


@overload(fast_tanh)
def _fast_tanh(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh64(x)


@njit(inline="always")
def _offsets(units):
    """``units``, ``2 units``, ``3 units`` unsigned, for the gate segments of a row: an index computed from signed
    ints may be negative, which counts from the end, and the select for that kept the loops over a segment scalar
    (an LSTM's forward pass 17% slower)."""
    return uintp(units), uintp(2 * units), uintp(3 * units)


# A loop that writes an array other than the one it reads vectorises only after a run-time check that the two do not
# overlap; when they are the same memory under two names the check fails and the loop runs a value at a time (eight
# times slower). Hence one function for a separate output and one for in place.
@njit(**_KERNEL)
def tanh_into(x, out):
    """``out = tanh(x)``, C-contiguous arrays of one shape, ``out`` not ``x``."""
    source, target = x.ravel(), out.ravel()
    for k in range(source.size):
        target[k] = fast_tanh(source[k])


@njit(**_KERNEL)
def tanh_in_place(x):
    """``x = tanh(x)``, a C-contiguous array."""
    values = x.ravel()
    for k in range(values.size):
        values[k] = fast_tanh(values[k])


@njit(**_KERNEL)
def lstm_step_backward(dh, carry, dc, c_prev, gates, tanh_c, dz, dc_prev):
    """RecurrentKernels.lstm_step_backward, given ``tanh(c)``. One short loop per output row segment: LLVM vectorises
    a loop only after checking at run time that its stores overlap none of its loads, and with every input and
    output in one loop it gave up (21 us a 64 x 128 step, 7.8 split; the same expressions, the same bits)."""
    n, units = tanh_c.shape
    one = tanh_c.dtype.type(1)
    u1, u2, u3 = _offsets(units)
    for b in range(n):
        for k in range(u1):  # the cell's gradient, kept in dc_prev until the end
            t = tanh_c[b, k]
            dc_prev[b, k] = dc[b, k] + (dh[b, k] + carry[b, k]) * gates[b, u3 + k] * (one - t * t)
        for k in range(u1):
            i = gates[b, k]
            dz[b, k] = dc_prev[b, k] * gates[b, u2 + k] * i * (one - i)
        for k in range(u1):
            f = gates[b, u1 + k]
            dz[b, u1 + k] = dc_prev[b, k] * c_prev[b, k] * f * (one - f)
        for k in range(u1):
            g = gates[b, u2 + k]
            dz[b, u2 + k] = dc_prev[b, k] * gates[b, k] * (one - g * g)
        for k in range(u1):
            o = gates[b, u3 + k]
            dz[b, u3 + k] = (dh[b, k] + carry[b, k]) * tanh_c[b, k] * o * (one - o)
        for k in range(u1):
            dc_prev[b, k] *= gates[b, u1 + k]


@njit(**_KERNEL)
def gru_step_backward(dh, carry, h_prev, gates, hu, dzx, dzh, direct):
    """RecurrentKernels.gru_step_backward, one short loop per output row segment (see lstm_step_backward: 21 -> 8.5 us
    a 64 x 128 step, the same bits)."""
    n, units = h_prev.shape
    one = h_prev.dtype.type(1)
    u1, u2, _ = _offsets(units)
    for b in range(n):
        for k in range(u1):  # the candidate's gradient
            z, candidate = gates[b, k], gates[b, u2 + k]
            dzx[b, u2 + k] = (dh[b, k] + carry[b, k]) * (one - z) * (one - candidate * candidate)
        for k in range(u1):
            z, candidate = gates[b, k], gates[b, u2 + k]
            dzx[b, k] = (dh[b, k] + carry[b, k]) * (h_prev[b, k] - candidate) * z * (one - z)
        for k in range(u1):
            r = gates[b, u1 + k]
            dzx[b, u1 + k] = dzx[b, u2 + k] * hu[b, u2 + k] * r * (one - r)
        for k in range(u2):
            dzh[b, k] = dzx[b, k]
        for k in range(u1):
            dzh[b, u2 + k] = dzx[b, u2 + k] * gates[b, u1 + k]
        for k in range(u1):
            direct[b, k] = (dh[b, k] + carry[b, k]) * gates[b, k]


@njit(**_KERNEL)
def _scaled_sums(xw, hu, gates, n, lo, hi, scale):
    """Row ``n``, gate columns ``[lo, hi)``: ``gates = (xw + hu) * scale`` (a sigmoid gate is taken as
    ``tanh(z / 2) / 2 + 1 / 2``)."""
    for k in range(uintp(lo), uintp(hi)):
        gates[n, k] = (xw[n, k] + hu[n, k]) * scale


@njit(**_KERNEL)
def _sigmoids_from_tanh(gates, n, lo, hi):
    """Row ``n``, gate columns ``[lo, hi)`` holding ``tanh(z / 2)``: ``sigmoid(z) = tanh(z / 2) / 2 + 1 / 2``."""
    half = gates.dtype.type(0.5)
    for k in range(uintp(lo), uintp(hi)):
        gates[n, k] = gates[n, k] * half + half


@njit(**_KERNEL)
def lstm_gates_in(xw, hu, gates, u):
    """RecurrentKernels.lstm_step, up to the gates' tanh: ``xw + hu``, halved for the sigmoid gates i, f, o."""
    half, one = gates.dtype.type(0.5), gates.dtype.type(1)
    for n in range(gates.shape[0]):
        _scaled_sums(xw, hu, gates, n, 0, 2 * u, half)
        _scaled_sums(xw, hu, gates, n, 2 * u, 3 * u, one)
        _scaled_sums(xw, hu, gates, n, 3 * u, 4 * u, half)


@njit(**_KERNEL)
def lstm_cell(gates, c_prev, c, u):
    """RecurrentKernels.lstm_step, after the gates' tanh: the sigmoid gates finished, ``c = f c_prev + i g``."""
    u1, u2, _ = _offsets(u)
    for n in range(gates.shape[0]):
        _sigmoids_from_tanh(gates, n, 0, 2 * u)
        _sigmoids_from_tanh(gates, n, 3 * u, 4 * u)
        for k in range(u1):
            c[n, k] = gates[n, u1 + k] * c_prev[n, k] + gates[n, k] * gates[n, u2 + k]


@njit(**_KERNEL)
def lstm_output(gates, h, u):
    """RecurrentKernels.lstm_step, after the cell's tanh (in ``h``): ``h = o tanh(c)``."""
    u1, _, u3 = _offsets(u)
    for n in range(h.shape[0]):
        for k in range(u1):
            h[n, k] *= gates[n, u3 + k]


@njit(**_KERNEL)
def gru_gates_in(xw, hu, zr, u):
    """RecurrentKernels.gru_step, up to the z and r gates' tanh: ``(xw + hu) / 2``, into ``zr`` (rows of ``2 u``):
    NumPy's tanh over a contiguous array runs twice as fast as over the gates' strided columns."""
    half = zr.dtype.type(0.5)
    for n in range(zr.shape[0]):
        for k in range(2 * u):
            zr[n, k] = (xw[n, k] + hu[n, k]) * half


@njit(**_KERNEL)
def gru_candidate_in(xw, hu, zr, gates, candidate, u):
    """RecurrentKernels.gru_step, between the tanhs: z and r finished into the gates, the candidate's ``r hu_h +
    xw_h`` into ``candidate`` (rows of ``u``, contiguous for its tanh)."""
    half = zr.dtype.type(0.5)
    u1, u2, _ = _offsets(u)
    for n in range(zr.shape[0]):
        for k in range(u2):
            gates[n, k] = zr[n, k] * half + half
        for k in range(u1):
            candidate[n, k] = gates[n, u1 + k] * hu[n, u2 + k] + xw[n, u2 + k]


@njit(**_KERNEL)
def gru_state(candidate, gates, h_prev, h, u):
    """RecurrentKernels.gru_step, after the candidate's tanh: the candidate into the gates, ``h = (h_prev - n) z +
    n``."""
    u1, u2, _ = _offsets(u)
    for n in range(h.shape[0]):
        for k in range(u1):
            gates[n, u2 + k] = candidate[n, k]
        for k in range(u1):
            h[n, k] = (h_prev[n, k] - candidate[n, k]) * gates[n, k] + candidate[n, k]


# ----------------------------------------------------------------------------------------------- whole passes
@njit(**_KERNEL)
def _add_bias(rows, bias):
    """``rows += bias`` (``bias`` empty: none), a step's input projections just before the step reads them."""
    if bias.size:
        for n in range(rows.shape[0]):
            for k in range(rows.shape[1]):
                rows[n, k] += bias[k]


@njit(**_KERNEL)
def _lstm_gates(xw, b, hu, gates, u):
    """RecurrentKernels.lstm_step's gates: ``sigmoid`` (as ``tanh(z / 2) / 2 + 1 / 2``) of i, f and o, ``tanh`` of
    the candidate g, of ``z = (xw + b) + hu``."""
    half = gates.dtype.type(0.5)
    u1, u2, u3 = _offsets(u)
    for n in range(gates.shape[0]):
        for k in range(u2):
            gates[n, k] = fast_tanh((xw[n, k] + b[k] + hu[n, k]) * half) * half + half
        for k in range(u2, u3):
            gates[n, k] = fast_tanh(xw[n, k] + b[k] + hu[n, k])
        for k in range(u3, u3 + u1):
            gates[n, k] = fast_tanh((xw[n, k] + b[k] + hu[n, k]) * half) * half + half


@njit(**_KERNEL)
def _lstm_state(gates, c_prev, c, h, u):
    """RecurrentKernels.lstm_step's state: ``c = f c_prev + i g``, ``h = o tanh(c)``."""
    u1, u2, u3 = _offsets(u)
    for n in range(c.shape[0]):
        for k in range(u1):
            c[n, k] = gates[n, u1 + k] * c_prev[n, k] + gates[n, k] * gates[n, u2 + k]
        for k in range(u1):
            h[n, k] = gates[n, u3 + k] * fast_tanh(c[n, k])


# ----------------------------------------------------------------------------------------------- masked steps
# ``masked[t, n]``: row ``n`` of step ``t`` is padding (RecurrentKernels.time_major_masked); an empty array: no mask.
@njit(**_KERNEL)
def _hold(masked, t, new, old):
    """RecurrentKernels._hold: masked rows of step ``t`` keep the previous state."""
    if masked.shape[0]:
        for n in range(new.shape[0]):
            if masked[t, n]:
                for k in range(new.shape[1]):
                    new[n, k] = old[n, k]


@njit(**_KERNEL)
def _total_gradient(masked, dh, carry, total):
    """RecurrentKernels._total_gradient: ``total = dh + carry`` where there is a mask."""
    if masked.shape[0]:
        for n in range(total.shape[0]):
            for k in range(total.shape[1]):
                total[n, k] = dh[n, k] + carry[n, k]


@njit(**_KERNEL)
def _pass_masked(masked, t, total, dz, carry):
    """RecurrentKernels._pass_masked: masked rows of step ``t`` give no gradient to the weights and pass the state's
    gradient back unchanged."""
    if masked.shape[0]:
        for n in range(dz.shape[0]):
            if masked[t, n]:
                for k in range(dz.shape[1]):
                    dz[n, k] = 0
                for k in range(carry.shape[1]):
                    carry[n, k] = total[n, k]


@njit(**_KERNEL)
def _recurrent_product(h, u, t, zero_start, out):
    """``out = h[t] u``; nothing to multiply for the first step from a zero state."""
    if t == 0 and zero_start:
        out[...] = 0
    else:
        np.dot(h[t], u, out)


@njit(**_KERNEL)
def lstm_pass(xw, b, u, h, c, gates, hu, masked):
    """RecurrentKernels.lstm_forward, the bias added as each step reads ``xw`` (``b``: zeros for none; ``xw`` is
    left without it; ``hu``: a step's scratch)."""
    units = c.shape[2]
    zero_start = not h[0].any()
    for t in range(xw.shape[0]):
        _recurrent_product(h, u, t, zero_start, hu)
        _lstm_gates(xw[t], b, hu, gates[t], units)
        _lstm_state(gates[t], c[t], c[t + 1], h[t + 1], units)
        _hold(masked, t, h[t + 1], h[t])
        _hold(masked, t, c[t + 1], c[t])


@njit(**_KERNEL)
def _carried(u, dz, carry_t, carry):
    """``carry = dz u^T``, the gradient a step passes to the previous state, as ``(u dz^T)^T``: at 32 x 512 by
    512 x 128 that product and the transposing copy take 10% less than the product with ``u^T`` (the same sums)."""
    np.dot(u, dz.T, carry_t)
    for n in range(carry.shape[0]):
        for k in range(carry.shape[1]):
            carry[n, k] = carry_t[k, n]


@njit(**_KERNEL)
def lstm_backward_pass(dh, u, c, gates, dz, carry, dc, dc_prev, total, masked, tanh_c, carry_t):
    """RecurrentKernels.lstm_backward (``carry``, ``dc``, ``dc_prev``, ``total`` and ``tanh_c``: one step's
    scratch; ``carry_t``: its transpose)."""
    carry[...] = 0
    dc[...] = 0
    for t in range(dh.shape[0] - 1, -1, -1):
        _total_gradient(masked, dh[t], carry, total)
        tanh_into(c[t + 1], tanh_c)
        lstm_step_backward(dh[t], carry, dc, c[t], gates[t], tanh_c, dz[t], dc_prev)
        _hold(masked, t, dc_prev, dc)  # a held cell passes its gradient back as is
        dc, dc_prev = dc_prev, dc
        if t:
            _carried(u, dz[t], carry_t, carry)
        _pass_masked(masked, t, total, dz[t], carry)


@njit(**_KERNEL)
def gru_pass(xw, b, u, b_u, h, hu, gates, masked, zr, candidate):
    """RecurrentKernels.gru_forward (``b``, ``b_u``: the input and recurrent biases, empty for none; ``zr`` and
    ``candidate``: one step's scratch)."""
    units = h.shape[2]
    zero_start = not h[0].any()
    for t in range(xw.shape[0]):
        _add_bias(xw[t], b)
        step = hu[t]
        _recurrent_product(h, u, t, zero_start, step)
        _add_bias(step, b_u)
        gru_gates_in(xw[t], step, zr, units)
        tanh_in_place(zr)
        gru_candidate_in(xw[t], step, zr, gates[t], candidate, units)
        tanh_in_place(candidate)
        gru_state(candidate, gates[t], h[t], h[t + 1], units)
        _hold(masked, t, h[t + 1], h[t])


@njit(**_KERNEL)
def gru_backward_pass(dh, u, h, gates, hu, dzx, dzh, carry, direct, total, masked, carry_t):
    """RecurrentKernels.gru_backward (``carry``, ``direct`` and ``total``: one step's scratch; ``carry_t``: its
    transpose)."""
    carry[...] = 0
    for t in range(dh.shape[0] - 1, -1, -1):
        _total_gradient(masked, dh[t], carry, total)
        gru_step_backward(dh[t], carry, h[t], gates[t], hu[t], dzx[t], dzh[t], direct)
        if t:
            _carried(u, dzh[t], carry_t, carry)
            carry += direct
        _pass_masked(masked, t, total, dzx[t], carry)  # dzx's rows: zeroed; carry: set twice, the same way
        _pass_masked(masked, t, total, dzh[t], carry)


@njit(**_KERNEL)
def _relu_into(z, h):
    """``h = max(z, 0)``, NaN kept (NumPy's ``maximum``)."""
    zero = z.dtype.type(0)
    source, target = z.ravel(), h.ravel()
    for k in range(source.size):
        v = source[k]
        target[k] = zero if v < zero else v


@njit(**_KERNEL)
def rnn_pass(xw, b, u, h, z, masked, relu):
    """RecurrentKernels.rnn_forward with tanh, or ReLU where ``relu`` (``b`` empty: no bias)."""
    zero_start = not h[0].any()
    for t in range(xw.shape[0]):
        _add_bias(xw[t], b)
        step = z[t]
        _recurrent_product(h, u, t, zero_start, step)
        step += xw[t]
        if relu:
            _relu_into(step, h[t + 1])
        else:
            tanh_into(step, h[t + 1])
        _hold(masked, t, h[t + 1], h[t])


@njit(**_KERNEL)
def rnn_backward_pass(dh, u, h, dz, carry, total, masked, relu, carry_t):
    """RecurrentKernels.rnn_backward with tanh, or ReLU where ``relu`` (``carry`` and ``total``: one step's scratch;
    ``carry_t``: its transpose)."""
    zero, one = dz.dtype.type(0), dz.dtype.type(1)
    carry[...] = 0
    for t in range(dh.shape[0] - 1, -1, -1):
        _total_gradient(masked, dh[t], carry, total)
        step, state = dz[t], h[t + 1]
        for n in range(step.shape[0]):
            if relu:
                for k in range(step.shape[1]):
                    step[n, k] = (dh[t, n, k] + carry[n, k]) * (one if state[n, k] > zero else zero)
            else:
                for k in range(step.shape[1]):
                    y = state[n, k]
                    step[n, k] = (dh[t, n, k] + carry[n, k]) * (one - y * y)
        if t:
            _carried(u, step, carry_t, carry)
        _pass_masked(masked, t, total, step, carry)
