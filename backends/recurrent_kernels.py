"""Kernels of the recurrent layers: one time step's gate non-linearities and state update, forward and backward,
as array expressions over ``self.xp``.

A recurrent layer computes the input projection ``xw = x W + b`` for every step as one matrix product and the
recurrent product ``hu = h_prev U`` per step; these kernels take both and do the rest of the step. Gate blocks sit
side by side along the last axis in Keras's order: LSTM ``(i, f, c, o)``, GRU ``(z, r, h)``. The backward kernels get
the gradient of the step's output ``dh`` (from the layer's output) and ``carry`` (from the next step) separately, and
write the gradients of the step's pre-activations, from which the layer forms every weight gradient with one matrix
product over all steps.

The passes (``*_forward``, ``*_backward``) run every step of a batch of time-major sequences: the recurrent product
and the step kernel per step, and Keras's masking (a padded step holds the state and passes its gradient back as
is). A forward pass takes the input projections ``xw`` without their bias ``b`` and adds it (here in place; a compiled
pass as it reads each step's rows, leaving ``xw`` as it may). A backend compiles a whole pass where Python between
steps costs more than the step.
"""

from __future__ import annotations

from backends.activation_kernels import NEEDS_PREACTIVATION


class RecurrentKernels:
    """One step of SimpleRNN, LSTM and GRU over ``self.xp``; see :class:`backends.base.Backend`."""

    #: Fewest gate values per step a block of a batch's sequences must compute for a recurrent layer to run it on a
    #: thread of its own (:meth:`~backends.base.Backend.map_blocks`); None: never. A step is a handful of short
    #: calls, each taking and giving back the GIL, so only steps with enough work per call gain from a second core.
    recurrent_block_work: int | None = None

    # ----------------------------------------------------------------- masks over time steps
    def sequence_mask(self, x, value: float, mask, masked, out):
        """Keras's Masking: ``mask[n, t]`` is whether any feature of step ``t`` differs from ``value``; ``masked`` is
        its negation; ``out = x`` with the masked steps zeroed."""
        xp = self.xp
        xp.any(x != value, axis=-1, out=mask)
        xp.logical_not(mask, out=masked)
        xp.multiply(x, mask[..., None], out=out)
        return out

    def time_major_masked(self, mask, reverse: bool, out):
        """``out[t, n]``: whether step ``t`` of sequence ``n`` is masked, steps in processing order (reversed for a
        layer that reads backwards), from Masking's ``mask[n, t]`` (True: kept)."""
        self.xp.logical_not((mask[:, ::-1] if reverse else mask).T, out=out)
        return out

    def fill_masked(self, masked, target, source):
        """``target`` takes ``source`` (a number or an array of its shape) where ``masked`` is True, ``masked``
        covering ``target``'s leading axes (the rows of a step, or the steps of a batch)."""
        self.xp.copyto(target, source, where=masked.reshape(masked.shape + (1,) * (target.ndim - masked.ndim)))
        return target

    def masked_time_mean(self, x, mask, out):
        """``out[n] = sum_t mask[n, t] x[n, t] / max(sum_t mask[n, t], 1)``: the mean over the steps kept (0 when
        a sequence is all padding)."""
        xp = self.xp
        kept = mask[..., None].astype(x.dtype)
        xp.divide((x * kept).sum(axis=1), xp.maximum(kept.sum(axis=1), 1), out=out)
        return out

    def masked_time_mean_backward(self, dy, mask, dx):
        """The gradient of :meth:`masked_time_mean`: each kept step gets ``dy / count``, padded steps nothing."""
        xp = self.xp
        kept = mask[..., None].astype(dy.dtype)
        xp.multiply(kept, (dy / xp.maximum(kept.sum(axis=1), 1))[:, None, :], out=dx)
        return dx

    def _add_input_bias(self, xw, b) -> None:
        """``xw += b`` over every step (``b`` None: no bias)."""
        if b is not None:
            flat = xw.reshape(-1, xw.shape[-1])
            self.bias_activation(flat, b, "linear", 0.0, flat)

    def _hold(self, masked, t, new, old) -> None:
        """Masked rows of step ``t`` keep the previous state: ``new`` takes ``old`` there."""
        if masked is not None:
            self.fill_masked(masked[t], new, old)

    def _total_gradient(self, masked, t, dh, carry, total):
        """``total = dh[t] + carry``, the gradient of step ``t``'s state, kept for masked rows (which pass it back
        as is); None without a mask."""
        if masked is None:
            return None
        total[...] = dh[t]
        total += carry
        return total

    def _pass_masked(self, masked, t, total, dz, carry) -> None:
        """Masked rows of step ``t``: no gradient for the weights, and the state's gradient goes to the previous
        step unchanged."""
        if masked is not None:
            self.fill_masked(masked[t], dz, 0)
            self.fill_masked(masked[t], carry, total)

    # ----------------------------------------------------------------- SimpleRNN
    def rnn_forward(self, xw, b, u, h, z, kind: str, alpha: float, masked):
        """Every step: ``z[t] = h[t] u + xw[t] + b`` (kept), ``h[t + 1] = f(z[t])``; ``masked[t, n]`` (or None): row
        ``n`` of step ``t`` is padding."""
        self._add_input_bias(xw, b)
        for t in range(xw.shape[0]):
            self.matmul(h[t], u, out=z[t])
            self.rnn_step(xw[t], z[t], kind, alpha, h[t + 1])
            self._hold(masked, t, h[t + 1], h[t])

    def rnn_backward(self, dh, u, h, z, dz, kind: str, alpha: float, scratch, masked):
        """Every step in reverse: ``dz[t]``, the gradient of the pre-activation, from the outputs' gradients ``dh``
        (``scratch``: two arrays of a step's state)."""
        carry, total = scratch
        carry[...] = 0
        for t in range(dh.shape[0] - 1, -1, -1):
            total_t = self._total_gradient(masked, t, dh, carry, total)
            pre = z[t] if kind in NEEDS_PREACTIVATION else None
            self.rnn_step_backward(dh[t], carry, h[t + 1], pre, kind, alpha, dz[t])
            if t:
                self.matmul(dz[t], u.T, out=carry)
            self._pass_masked(masked, t, total_t, dz[t], carry)

    def rnn_step(self, xw, hu, kind: str, alpha: float, h):
        """``h = f(xw + hu)``; ``hu`` is overwritten with the pre-activation (kept for the backward pass)."""
        self.xp.add(hu, xw, out=hu)
        return self.activation_forward(hu, kind, alpha, h)

    def rnn_step_backward(self, dh, carry, h, z, kind: str, alpha: float, dz):
        """``dz = (dh + carry) f'(z)``, from the output ``h`` (and the pre-activation ``z`` where needed)."""
        self.xp.add(dh, carry, out=dz)
        return self.activation_backward(dz, h, z, kind, alpha, dz)

    # ----------------------------------------------------------------- LSTM
    def _gate_sigmoid(self, z):
        """``sigmoid(z) = 0.5 tanh(z / 2) + 0.5`` in place: four passes of SIMD loops, against eight with
        temporaries for the tail-exact form of :meth:`_sigmoid`. A gate needs no relative precision in its tails (a
        gate of 1e-9 and one of 0 close the same), and the absolute error stays within one rounding of 1."""
        z *= 0.5
        self.xp.tanh(z, out=z)
        z *= 0.5
        z += 0.5
        return z

    def lstm_step(self, xw, hu, c_prev, gates, c, h):
        """``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of ``xw + hu``; ``c = f c_prev + i g``; ``h = o tanh(c)``.
        ``gates`` keeps ``(i, f, g, o)`` after their non-linearities."""
        xp = self.xp
        u = c.shape[1]
        xp.add(xw, hu, out=gates)
        self._gate_sigmoid(gates[:, : 2 * u])
        xp.tanh(gates[:, 2 * u : 3 * u], out=gates[:, 2 * u : 3 * u])
        self._gate_sigmoid(gates[:, 3 * u :])
        i, f, g, o = (gates[:, k * u : (k + 1) * u] for k in range(4))
        xp.multiply(f, c_prev, out=c)
        xp.multiply(i, g, out=h)  # h as scratch until its turn
        c += h
        xp.tanh(c, out=h)
        h *= o
        return h

    def lstm_step_backward(self, dh, carry, dc, c_prev, gates, c, dz, dc_prev):
        """From ``dh + carry`` (the step's output) and ``dc`` (its cell, from the next step): ``dz``, the gradients
        of the four pre-activations, and ``dc_prev``, the gradient carried to the previous cell."""
        xp = self.xp
        u = c.shape[1]
        i, f, g, o = (gates[:, k * u : (k + 1) * u] for k in range(4))
        total = dh + carry
        tanh_c = xp.tanh(c)
        dcell = dc + total * o * (1 - tanh_c * tanh_c)
        dz[:, :u] = dcell * g * i * (1 - i)
        dz[:, u : 2 * u] = dcell * c_prev * f * (1 - f)
        dz[:, 2 * u : 3 * u] = dcell * i * (1 - g * g)
        dz[:, 3 * u :] = total * tanh_c * o * (1 - o)
        dc_prev[...] = dcell * f
        return dz

    def lstm_forward(self, xw, b, u, h, c, gates, hu, masked):
        """Every step: states into ``h[1:]`` and ``c[1:]`` (``h[0]``, ``c[0]``: the initial ones), the gates into
        ``gates`` (``hu``: a step's scratch for the recurrent product)."""
        self._add_input_bias(xw, b)
        for t in range(xw.shape[0]):
            self.matmul(h[t], u, out=hu)
            self.lstm_step(xw[t], hu, c[t], gates[t], c[t + 1], h[t + 1])
            self._hold(masked, t, h[t + 1], h[t])
            self._hold(masked, t, c[t + 1], c[t])

    def lstm_backward(self, dh, u, c, gates, dz, scratch, masked):
        """Every step in reverse: ``dz[t]``, the gradients of the four pre-activations (``scratch``: four arrays of a
        step's state)."""
        carry, dc, dc_prev, total = scratch
        carry[...] = 0
        dc[...] = 0
        for t in range(dh.shape[0] - 1, -1, -1):
            total_t = self._total_gradient(masked, t, dh, carry, total)
            self.lstm_step_backward(dh[t], carry, dc, c[t], gates[t], c[t + 1], dz[t], dc_prev)
            self._hold(masked, t, dc_prev, dc)  # a held cell passes its gradient back as is
            dc, dc_prev = dc_prev, dc
            if t:
                self.matmul(dz[t], u.T, out=carry)
            self._pass_masked(masked, t, total_t, dz[t], carry)

    # ----------------------------------------------------------------- GRU (reset after the recurrent product)
    def gru_forward(self, xw, b, u, b_u, h, hu, gates, masked):
        """Every step: ``hu[t] = h[t] u + b_u`` (the recurrent bias, or None; kept), the gates, ``h[t + 1]``."""
        self._add_input_bias(xw, b)
        for t in range(xw.shape[0]):
            self.matmul(h[t], u, out=hu[t])
            if b_u is not None:
                self.bias_activation(hu[t], b_u, "linear", 0.0, hu[t])
            self.gru_step(xw[t], hu[t], h[t], gates[t], h[t + 1])
            self._hold(masked, t, h[t + 1], h[t])

    def gru_backward(self, dh, u, h, gates, hu, dzx, dzh, scratch, masked):
        """Every step in reverse: ``dzx[t]`` and ``dzh[t]``, the gradients of the input projection and of the
        recurrent product (``scratch``: three arrays of a step's state)."""
        carry, direct, total = scratch
        carry[...] = 0
        for t in range(dh.shape[0] - 1, -1, -1):
            total_t = self._total_gradient(masked, t, dh, carry, total)
            self.gru_step_backward(dh[t], carry, h[t], gates[t], hu[t], dzx[t], dzh[t], direct)
            if t:
                self.matmul(dzh[t], u.T, out=carry)
                carry += direct
            if masked is not None:
                self.fill_masked(masked[t], dzx[t], 0)
            self._pass_masked(masked, t, total_t, dzh[t], carry)

    def gru_step(self, xw, hu, h_prev, gates, h):
        """Keras's GRU with ``reset_after=True`` (PyTorch's): ``z = sigmoid(xw_z + hu_z)``, ``r = sigmoid(xw_r +
        hu_r)``, ``n = tanh(xw_h + r hu_h)``, ``h = z h_prev + (1 - z) n = n + z (h_prev - n)``, with ``hu = h_prev U
        + b_h``. ``gates`` keeps ``(z, r, n)``."""
        xp = self.xp
        u = h.shape[1]
        xp.add(xw[:, : 2 * u], hu[:, : 2 * u], out=gates[:, : 2 * u])
        self._gate_sigmoid(gates[:, : 2 * u])
        z, r, n = gates[:, :u], gates[:, u : 2 * u], gates[:, 2 * u :]
        xp.multiply(r, hu[:, 2 * u :], out=n)
        n += xw[:, 2 * u :]
        xp.tanh(n, out=n)
        xp.subtract(h_prev, n, out=h)
        h *= z
        h += n
        return h

    def gru_step_backward(self, dh, carry, h_prev, gates, hu, dzx, dzh, direct):
        """From ``dh + carry``: ``dzx`` and ``dzh``, the gradients of ``xw`` and ``hu``, and ``direct``, the part of
        the previous state's gradient that does not pass through ``U`` (``(dh + carry) z``)."""
        u = h_prev.shape[1]
        z, r, n = gates[:, :u], gates[:, u : 2 * u], gates[:, 2 * u :]
        total = dh + carry
        dn = total * (1 - z) * (1 - n * n)
        dzx[:, :u] = total * (h_prev - n) * z * (1 - z)
        dzx[:, u : 2 * u] = dn * hu[:, 2 * u :] * r * (1 - r)
        dzx[:, 2 * u :] = dn
        dzh[:, : 2 * u] = dzx[:, : 2 * u]
        dzh[:, 2 * u :] = dn * r
        direct[...] = total * z
        return dzx
