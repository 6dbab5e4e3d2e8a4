"""Numba kernels of :mod:`backends.recurrent_kernels` (each docstring names the base method whose formula it fuses).
Imported on first use of an LSTM or GRU on the numba backend.

The backward steps are arithmetic only and fuse into one pass over a step's gates. The forward steps' sigmoids and
tanhs stay NumPy's SIMD ``tanh`` (compiled code would call the scalar C library, four times slower), so the kernels
here are the arithmetic between those calls, in the base expressions' order of operations: the results are the same
to the bit.
"""

from numba import njit

_KERNEL = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_KERNEL)
def lstm_step_backward(dh, carry, dc, c_prev, gates, tanh_c, dz, dc_prev):
    """RecurrentKernels.lstm_step_backward, given ``tanh(c)``. One short loop per output row segment: LLVM vectorises
    a loop only after checking at run time that its stores overlap none of its loads, and with every input and
    output in one loop it gave up (21 us a 64 x 128 step, 7.8 split; the same expressions, the same bits)."""
    n, units = tanh_c.shape
    one = tanh_c.dtype.type(1)
    for b in range(n):
        for k in range(units):  # the cell's gradient, kept in dc_prev until the end
            t = tanh_c[b, k]
            dc_prev[b, k] = dc[b, k] + (dh[b, k] + carry[b, k]) * gates[b, 3 * units + k] * (one - t * t)
        for k in range(units):
            i = gates[b, k]
            dz[b, k] = dc_prev[b, k] * gates[b, 2 * units + k] * i * (one - i)
        for k in range(units):
            f = gates[b, units + k]
            dz[b, units + k] = dc_prev[b, k] * c_prev[b, k] * f * (one - f)
        for k in range(units):
            g = gates[b, 2 * units + k]
            dz[b, 2 * units + k] = dc_prev[b, k] * gates[b, k] * (one - g * g)
        for k in range(units):
            o = gates[b, 3 * units + k]
            dz[b, 3 * units + k] = (dh[b, k] + carry[b, k]) * tanh_c[b, k] * o * (one - o)
        for k in range(units):
            dc_prev[b, k] *= gates[b, units + k]


@njit(**_KERNEL)
def gru_step_backward(dh, carry, h_prev, gates, hu, dzx, dzh, direct):
    """RecurrentKernels.gru_step_backward, one short loop per output row segment (see lstm_step_backward: 21 -> 8.5 us
    a 64 x 128 step, the same bits)."""
    n, units = h_prev.shape
    one = h_prev.dtype.type(1)
    for b in range(n):
        for k in range(units):  # the candidate's gradient
            z, candidate = gates[b, k], gates[b, 2 * units + k]
            dzx[b, 2 * units + k] = (dh[b, k] + carry[b, k]) * (one - z) * (one - candidate * candidate)
        for k in range(units):
            z, candidate = gates[b, k], gates[b, 2 * units + k]
            dzx[b, k] = (dh[b, k] + carry[b, k]) * (h_prev[b, k] - candidate) * z * (one - z)
        for k in range(units):
            r = gates[b, units + k]
            dzx[b, units + k] = dzx[b, 2 * units + k] * hu[b, 2 * units + k] * r * (one - r)
        for k in range(2 * units):
            dzh[b, k] = dzx[b, k]
        for k in range(units):
            dzh[b, 2 * units + k] = dzx[b, 2 * units + k] * gates[b, units + k]
        for k in range(units):
            direct[b, k] = (dh[b, k] + carry[b, k]) * gates[b, k]


@njit(**_KERNEL)
def _scaled_sums(xw, hu, gates, n, lo, hi, scale):
    """Row ``n``, gate columns ``[lo, hi)``: ``gates = (xw + hu) * scale`` (a sigmoid gate is taken as
    ``tanh(z / 2) / 2 + 1 / 2``)."""
    for k in range(lo, hi):
        gates[n, k] = (xw[n, k] + hu[n, k]) * scale


@njit(**_KERNEL)
def _sigmoids_from_tanh(gates, n, lo, hi):
    """Row ``n``, gate columns ``[lo, hi)`` holding ``tanh(z / 2)``: ``sigmoid(z) = tanh(z / 2) / 2 + 1 / 2``."""
    half = gates.dtype.type(0.5)
    for k in range(lo, hi):
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
    for n in range(gates.shape[0]):
        _sigmoids_from_tanh(gates, n, 0, 2 * u)
        _sigmoids_from_tanh(gates, n, 3 * u, 4 * u)
        for k in range(u):
            c[n, k] = gates[n, u + k] * c_prev[n, k] + gates[n, k] * gates[n, 2 * u + k]


@njit(**_KERNEL)
def lstm_output(gates, h, u):
    """RecurrentKernels.lstm_step, after the cell's tanh (in ``h``): ``h = o tanh(c)``."""
    for n in range(h.shape[0]):
        for k in range(u):
            h[n, k] *= gates[n, 3 * u + k]


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
    for n in range(zr.shape[0]):
        for k in range(2 * u):
            gates[n, k] = zr[n, k] * half + half
        for k in range(u):
            candidate[n, k] = gates[n, u + k] * hu[n, 2 * u + k] + xw[n, 2 * u + k]


@njit(**_KERNEL)
def gru_state(candidate, gates, h_prev, h, u):
    """RecurrentKernels.gru_step, after the candidate's tanh: the candidate into the gates, ``h = (h_prev - n) z +
    n``."""
    for n in range(h.shape[0]):
        for k in range(u):
            gates[n, 2 * u + k] = candidate[n, k]
        for k in range(u):
            h[n, k] = (h_prev[n, k] - candidate[n, k]) * gates[n, k] + candidate[n, k]
