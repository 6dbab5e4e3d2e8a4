"""The numba backend's recurrent layers: each pass over time as one compiled call
(:mod:`backends._numba_recurrent_kernels`), and the step kernels the base's passes call where no compiled pass
applies, mixed into :class:`backends.numba_backend.NumbaBackend`."""

from __future__ import annotations

from backends import blas_threads

_recurrent_kernels = None


def _load_recurrent_kernels():
    """The recurrent kernels compile on first use of a recurrent layer."""
    global _recurrent_kernels
    if _recurrent_kernels is None:
        load_compiled_blas()
        from backends import _numba_recurrent_kernels

        _recurrent_kernels = _numba_recurrent_kernels
    return _recurrent_kernels


def load_compiled_blas() -> None:
    """Loads the BLAS that Numba's compiled ``np.dot`` calls (SciPy's), so that thread limits, which apply to the
    libraries loaded when they are set, cover it from the start (Numba's own import loads it today; this does not
    count on that)."""
    import scipy.linalg.cython_blas  # noqa: F401


def _one_dtype(*arrays) -> bool:
    """Every array C-contiguous and of the first one's dtype: what the compiled passes take."""
    dtype = arrays[0].dtype
    return all(a.flags.c_contiguous and a.dtype == dtype for a in arrays)


#: SimpleRNN activations whose whole pass is compiled (the others run the base's steps).
_COMPILED_RNN_KINDS = ("tanh", "relu")


def _bias_or_empty(bias, like):
    """``bias``, or for None an empty row of ``like``'s dtype: what the compiled passes take for no bias."""
    return like[0, :0] if bias is None else bias


class NumbaRecurrentKernels:
    """The recurrent passes and steps of :class:`backends.numba_backend.NumbaBackend` (its per-thread scratch is the
    NumPy backend's ``_scratch_for``)."""

    # ----------------------------------------------------------------- recurrent passes
    # A whole pass over time is one compiled call (see backends._numba_recurrent_kernels), masks included; other
    # layouts and activations run the base's steps, each step through the kernels below.
    @staticmethod
    def _on_this_thread(kernel, *arrays) -> None:
        """``kernel(*arrays)`` with BLAS on the calling thread: a step's products are small, and SciPy's BLAS
        threads beside NumPy's (or beside the blocks' threads) made passes three times slower."""
        with blas_threads.one_thread():
            kernel(*arrays)

    def _mask_or_empty(self, masked):
        """``masked``, or for None an empty one: what the compiled passes take for no mask."""
        return self._scratch_for("no mask", (0, 0), bool) if masked is None else masked

    def _carry_transposed(self, carry):
        return self._scratch_for("carry transposed", carry.shape[::-1], carry.dtype)

    def rnn_forward(self, xw, b, u, h, z, kind, alpha, masked):
        bias = _bias_or_empty(b, u)
        if kind not in _COMPILED_RNN_KINDS or not _one_dtype(xw, bias, u, h, z):
            return super().rnn_forward(xw, b, u, h, z, kind, alpha, masked)
        kernel = _load_recurrent_kernels().rnn_pass
        self._on_this_thread(kernel, xw, bias, u, h, z, self._mask_or_empty(masked), kind == "relu")

    def rnn_backward(self, dh, u, h, z, dz, kind, alpha, scratch, masked):
        carry, total = scratch
        if kind not in _COMPILED_RNN_KINDS or not _one_dtype(dh, u, h, dz, carry, total):
            return super().rnn_backward(dh, u, h, z, dz, kind, alpha, scratch, masked)
        kernel, mask = _load_recurrent_kernels().rnn_backward_pass, self._mask_or_empty(masked)
        self._on_this_thread(kernel, dh, u, h, dz, carry, total, mask, kind == "relu", self._carry_transposed(carry))

    def lstm_forward(self, xw, b, u, h, c, gates, hu, masked):
        bias = self._scratch_for("no bias", u.shape[1:], u.dtype, zeroed=True) if b is None else b
        if not _one_dtype(xw, bias, u, h, c, gates, hu):
            return super().lstm_forward(xw, b, u, h, c, gates, hu, masked)
        kernel = _load_recurrent_kernels().lstm_pass
        self._on_this_thread(kernel, xw, bias, u, h, c, gates, hu, self._mask_or_empty(masked))

    def lstm_backward(self, dh, u, c, gates, dz, scratch, masked):
        if not _one_dtype(dh, u, c, gates, dz, *scratch):
            return super().lstm_backward(dh, u, c, gates, dz, scratch, masked)
        tanh_c = self._scratch_for("tanh c", scratch[0].shape, dh.dtype)
        kernel, mask = _load_recurrent_kernels().lstm_backward_pass, self._mask_or_empty(masked)
        self._on_this_thread(kernel, dh, u, c, gates, dz, *scratch, mask, tanh_c, self._carry_transposed(scratch[0]))

    def gru_forward(self, xw, b, u, b_u, h, hu, gates, masked):
        bias, recurrent_bias = _bias_or_empty(b, u), _bias_or_empty(b_u, u)
        if not _one_dtype(xw, bias, u, recurrent_bias, h, hu, gates):
            return super().gru_forward(xw, b, u, b_u, h, hu, gates, masked)
        n, units = h.shape[1:]
        zr = self._scratch_for("gru z and r", (n, 2 * units), h.dtype)
        candidate = self._scratch_for("gru candidate", (n, units), h.dtype)
        kernel, mask = _load_recurrent_kernels().gru_pass, self._mask_or_empty(masked)
        self._on_this_thread(kernel, xw, bias, u, recurrent_bias, h, hu, gates, mask, zr, candidate)

    def gru_backward(self, dh, u, h, gates, hu, dzx, dzh, scratch, masked):
        if not _one_dtype(dh, u, h, gates, hu, dzx, dzh, *scratch):
            return super().gru_backward(dh, u, h, gates, hu, dzx, dzh, scratch, masked)
        kernel, mask = _load_recurrent_kernels().gru_backward_pass, self._mask_or_empty(masked)
        self._on_this_thread(kernel, dh, u, h, gates, hu, dzx, dzh, *scratch, mask, self._carry_transposed(scratch[0]))

    # ----------------------------------------------------------------- recurrent steps
    # The forward steps keep their sigmoids and tanhs in NumPy's SIMD loops (four times faster than the scalar
    # C-library calls compiled code makes), one call per non-linearity over all its gates, with the arithmetic around
    # them fused. The backward steps are arithmetic only (the cell's tanh is taken by NumPy first) and fuse into one
    # pass.
    def lstm_step(self, xw, hu, c_prev, gates, c, h):
        arrays = (xw, hu, c_prev, gates, c, h)
        if not _one_dtype(*arrays):
            return super().lstm_step(*arrays)
        k, u = _load_recurrent_kernels(), c.shape[1]
        k.lstm_gates_in(xw, hu, gates, u)
        self.xp.tanh(gates, out=gates)
        k.lstm_cell(gates, c_prev, c, u)
        self.xp.tanh(c, out=h)
        k.lstm_output(gates, h, u)
        return h

    def gru_step(self, xw, hu, h_prev, gates, h):
        arrays = (xw, hu, h_prev, gates, h)
        if not _one_dtype(*arrays):
            return super().gru_step(*arrays)
        k, (n, u) = _load_recurrent_kernels(), h.shape
        zr = self._scratch_for("gru z and r", (n, 2 * u), h.dtype)
        candidate = self._scratch_for("gru candidate", (n, u), h.dtype)
        k.gru_gates_in(xw, hu, zr, u)
        self.xp.tanh(zr, out=zr)
        k.gru_candidate_in(xw, hu, zr, gates, candidate, u)
        self.xp.tanh(candidate, out=candidate)
        k.gru_state(candidate, gates, h_prev, h, u)
        return h

    def lstm_step_backward(self, dh, carry, dc, c_prev, gates, c, dz, dc_prev):
        arrays = (dh, carry, dc, c_prev, gates, c, dz, dc_prev)
        if not _one_dtype(*arrays):
            return super().lstm_step_backward(*arrays)
        tanh_c = self._step_scratch(c)
        self.xp.tanh(c, out=tanh_c)
        _load_recurrent_kernels().lstm_step_backward(dh, carry, dc, c_prev, gates, tanh_c, dz, dc_prev)
        return dz

    def gru_step_backward(self, dh, carry, h_prev, gates, hu, dzx, dzh, direct):
        arrays = (dh, carry, h_prev, gates, hu, dzx, dzh, direct)
        if not _one_dtype(*arrays):
            return super().gru_step_backward(*arrays)
        _load_recurrent_kernels().gru_step_backward(*arrays)
        return dzx

    def _step_scratch(self, like):
        return self._scratch_for("step", like.shape, like.dtype)
