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
    """RecurrentKernels.lstm_step_backward, given ``tanh(c)``."""
    n, units = tanh_c.shape
    one = tanh_c.dtype.type(1)
    for b in range(n):
        for k in range(units):
            i, f = gates[b, k], gates[b, units + k]
            g, o = gates[b, 2 * units + k], gates[b, 3 * units + k]
            total = dh[b, k] + carry[b, k]
            t = tanh_c[b, k]
            dcell = dc[b, k] + total * o * (one - t * t)
            dz[b, k] = dcell * g * i * (one - i)
            dz[b, units + k] = dcell * c_prev[b, k] * f * (one - f)
            dz[b, 2 * units + k] = dcell * i * (one - g * g)
            dz[b, 3 * units + k] = total * t * o * (one - o)
            dc_prev[b, k] = dcell * f


@njit(**_KERNEL)
def gru_step_backward(dh, carry, h_prev, gates, hu, dzx, dzh, direct):
    """RecurrentKernels.gru_step_backward."""
    n, units = h_prev.shape
    one = h_prev.dtype.type(1)
    for b in range(n):
        for k in range(units):
            z, r, candidate = gates[b, k], gates[b, units + k], gates[b, 2 * units + k]
            total = dh[b, k] + carry[b, k]
            dn = total * (one - z) * (one - candidate * candidate)
            dzx[b, k] = total * (h_prev[b, k] - candidate) * z * (one - z)
            dzx[b, units + k] = dn * hu[b, 2 * units + k] * r * (one - r)
            dzx[b, 2 * units + k] = dn
            dzh[b, k], dzh[b, units + k] = dzx[b, k], dzx[b, units + k]
            dzh[b, 2 * units + k] = dn * r
            direct[b, k] = total * z


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
def gru_gates_in(xw, hu, gates, u):
    """RecurrentKernels.gru_step, up to the z and r gates' tanh: ``(xw + hu) / 2``."""
    half = gates.dtype.type(0.5)
    for n in range(gates.shape[0]):
        _scaled_sums(xw, hu, gates, n, 0, 2 * u, half)


@njit(**_KERNEL)
def gru_candidate_in(xw, hu, gates, u):
    """RecurrentKernels.gru_step, between the tanhs: z and r finished, the candidate's ``r hu_h + xw_h``."""
    for n in range(gates.shape[0]):
        _sigmoids_from_tanh(gates, n, 0, 2 * u)
        for k in range(u):
            gates[n, 2 * u + k] = gates[n, u + k] * hu[n, 2 * u + k] + xw[n, 2 * u + k]


@njit(**_KERNEL)
def gru_state(gates, h_prev, h, u):
    """RecurrentKernels.gru_step, after the candidate's tanh: ``h = (h_prev - n) z + n``."""
    for n in range(h.shape[0]):
        for k in range(u):
            candidate = gates[n, 2 * u + k]
            h[n, k] = (h_prev[n, k] - candidate) * gates[n, k] + candidate
