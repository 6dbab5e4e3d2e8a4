"""CuPy kernels of :mod:`backends.recurrent_kernels`: each step's gates in one launch, forward and backward, one
thread per unit of each row (the gate blocks are read side by side), mixed into the CuPy backend. The arithmetic is
written in the order of the base class's expressions, so results round as on the CPU; nothing is allocated, so a
recurrent step records into a CUDA graph."""

from __future__ import annotations

import functools

import numpy as np

# Keras's gate sigmoid, as the base class computes it: 0.5 tanh(z / 2) + 0.5.
_PREAMBLE = r"""
template <typename T> __device__ T netcore_gate(T z) { return (T)0.5 * tanh(z * (T)0.5) + (T)0.5; }
"""
# Where unit k of row b of a step lives in its (rows, blocks * units) arrays.
_INDEX = "int b = i / units, k = i % units; long long row = (long long)b * blocks * units + k;"


class CupyRecurrentKernels:
    """The recurrent step kernels of :class:`backends.cupy_backend.CupyBackend`."""

    @functools.cached_property
    def _lstm_kernel(self):
        # RecurrentKernels.lstm_step
        return self.xp.ElementwiseKernel(
            "raw T xw, raw T hu, T c_prev, int32 units, int32 blocks",
            "raw T gates, T c, T h",
            _INDEX
            + """T gi = netcore_gate(xw[row] + hu[row]);
               T gf = netcore_gate(xw[row + units] + hu[row + units]);
               T gg = tanh(xw[row + 2 * units] + hu[row + 2 * units]);
               T go = netcore_gate(xw[row + 3 * units] + hu[row + 3 * units]);
               gates[row] = gi; gates[row + units] = gf; gates[row + 2 * units] = gg; gates[row + 3 * units] = go;
               T cell = gf * c_prev + gi * gg;
               c = cell;
               h = tanh(cell) * go;""",
            "netcore_lstm_step",
            preamble=_PREAMBLE,
        )

    @functools.cached_property
    def _lstm_backward_kernel(self):
        # RecurrentKernels.lstm_step_backward
        return self.xp.ElementwiseKernel(
            "T dh, T carry, T dc, T c_prev, raw T gates, T c, int32 units, int32 blocks",
            "raw T dz, T dc_prev",
            _INDEX
            + """T gi = gates[row], gf = gates[row + units], gg = gates[row + 2 * units], go = gates[row + 3 * units];
               T total = dh + carry;
               T tanh_c = tanh(c);
               T dcell = dc + total * go * ((T)1 - tanh_c * tanh_c);
               dz[row] = dcell * gg * gi * ((T)1 - gi);
               dz[row + units] = dcell * c_prev * gf * ((T)1 - gf);
               dz[row + 2 * units] = dcell * gi * ((T)1 - gg * gg);
               dz[row + 3 * units] = total * tanh_c * go * ((T)1 - go);
               dc_prev = dcell * gf;""",
            "netcore_lstm_step_backward",
        )

    @functools.cached_property
    def _gru_kernel(self):
        # RecurrentKernels.gru_step
        return self.xp.ElementwiseKernel(
            "raw T xw, raw T hu, T h_prev, int32 units, int32 blocks",
            "raw T gates, T h",
            _INDEX
            + """T z = netcore_gate(xw[row] + hu[row]);
               T r = netcore_gate(xw[row + units] + hu[row + units]);
               T n = tanh(r * hu[row + 2 * units] + xw[row + 2 * units]);
               gates[row] = z; gates[row + units] = r; gates[row + 2 * units] = n;
               h = (h_prev - n) * z + n;""",
            "netcore_gru_step",
            preamble=_PREAMBLE,
        )

    @functools.cached_property
    def _gru_backward_kernel(self):
        # RecurrentKernels.gru_step_backward
        return self.xp.ElementwiseKernel(
            "T dh, T carry, T h_prev, raw T gates, raw T hu, int32 units, int32 blocks",
            "raw T dzx, raw T dzh, T direct",
            _INDEX
            + """T z = gates[row], r = gates[row + units], n = gates[row + 2 * units];
               T total = dh + carry;
               T dn = total * ((T)1 - z) * ((T)1 - n * n);
               T dz = total * (h_prev - n) * z * ((T)1 - z);
               T dr = dn * hu[row + 2 * units] * r * ((T)1 - r);
               dzx[row] = dz; dzx[row + units] = dr; dzx[row + 2 * units] = dn;
               dzh[row] = dz; dzh[row + units] = dr; dzh[row + 2 * units] = dn * r;
               direct = total * z;""",
            "netcore_gru_step_backward",
        )

    # ----------------------------------------------------------------- overrides
    def lstm_step(self, xw, hu, c_prev, gates, c, h):
        units = np.int32(c.shape[1])
        self._lstm_kernel(xw, hu, c_prev, units, np.int32(4), gates, c, h)
        return h

    def lstm_step_backward(self, dh, carry, dc, c_prev, gates, c, dz, dc_prev):
        units = np.int32(c.shape[1])
        self._lstm_backward_kernel(dh, carry, dc, c_prev, gates, c, units, np.int32(4), dz, dc_prev)
        return dz

    def gru_step(self, xw, hu, h_prev, gates, h):
        units = np.int32(h.shape[1])
        self._gru_kernel(xw, hu, h_prev, units, np.int32(3), gates, h)
        return h

    def gru_step_backward(self, dh, carry, h_prev, gates, hu, dzx, dzh, direct):
        units = np.int32(h_prev.shape[1])
        self._gru_backward_kernel(dh, carry, h_prev, gates, hu, units, np.int32(3), dzx, dzh, direct)
        return dzx
