"""Numba kernels of :mod:`backends.recurrent_kernels`: the backward steps, arithmetic only, in one pass over a step's
gates (each docstring names the base method whose formula it fuses). Imported on first use of an LSTM or GRU on the
numba backend."""

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
