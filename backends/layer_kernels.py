"""Kernels of the non-dense layers: inverted dropout, Gaussian noise and batch normalisation."""

from __future__ import annotations


class LayerKernels:
    """Dropout, noise and batch-norm kernels over ``self.xp``; see :class:`backends.base.Backend`."""

    # ----------------------------------------------------------------- inverted dropout
    def dropout_forward(self, x, rate: float, rng, mask, out):
        """Keep each unit with probability ``1 - rate``: ``mask = (u >= rate) / (1 - rate)``, ``out = x * mask``.

        ``mask`` is kept for the backward pass; the same generator state gives the same mask on every backend. It
        may be smaller than ``x`` and broadcast (``(batch, 1, 1, channels)`` drops whole feature maps).
        """
        self.random_into(rng, mask)
        self.dropout_apply_mask(mask, rate)
        self.xp.multiply(x, mask, out=out)
        return out

    def dropout_apply_mask(self, mask, rate: float):
        """Turn uniform draws into the scaled keep mask, in place (also used to replay a given mask)."""
        mask[...] = (mask >= rate) * (1 / (1 - rate))
        return mask

    def dropout_backward(self, dy, mask, out):
        """``out = dy * mask`` (``mask`` broadcast as in the forward pass)."""
        return self.xp.multiply(dy, mask, out=out)

    def gaussian_noise(self, x, stddev: float, rng, out):
        """``out = x + N(0, stddev^2)`` (additive noise for data augmentation; its gradient is the identity)."""
        noise = self.random_normal(rng, x.shape, 0.0, stddev, x.dtype)
        return self.xp.add(x, noise, out=out)

    # ----------------------------------------------------------------- penalties and constraints
    def add_penalty_gradient(self, w, grad, l1: float, l2: float) -> None:
        """``grad += l1 sign(w) + 2 l2 w`` (the gradient of ``l1 sum|w| + l2 sum w^2``)."""
        if l1:
            grad += l1 * self.xp.sign(w)
        if l2:
            grad += (2 * l2) * w

    def clip_column_norms(self, w, max_value: float) -> None:
        """Rescale each column of ``w`` whose Euclidean norm exceeds ``max_value`` down to it (max-norm)."""
        xp = self.xp
        norms = xp.sqrt((w * w).sum(axis=0, keepdims=True))
        w *= xp.minimum(1, max_value / xp.maximum(norms, 1e-12))

    # ----------------------------------------------------------------- batch normalisation
    def batchnorm_forward_train(
        self,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        out,
        xhat,
        inv_std,
        *,
        eps: float,
        new_weight: float,
        unbiased_running_var: bool,
    ):
        """Normalise with the batch's statistics and update the running ones.

        ``xhat = (x - mean) / sqrt(var + eps)`` with the biased batch variance; ``out = gamma xhat + beta``;
        ``running = (1 - new_weight) running + new_weight batch`` (PyTorch: new_weight = momentum = 0.1; Keras:
        new_weight = 1 - momentum = 0.01), the variance made unbiased by ``n / (n - 1)`` when asked.
        """
        n = x.shape[0]
        mean = x.mean(axis=0)
        self.xp.subtract(x, mean, out=xhat)
        var = (xhat * xhat).mean(axis=0)
        self._normalise_and_track(mean, var, n, gamma, beta, running_mean, running_var, out, xhat, inv_std, eps,
                                  new_weight, unbiased_running_var)  # fmt: skip
        return out

    def _normalise_and_track(self, mean, var, n, gamma, beta, running_mean, running_var, out, xhat, inv_std, eps,
                             new_weight, unbiased):  # fmt: skip
        """The end of a training forward pass, from ``xhat = x - mean`` and the batch's (biased) ``var`` over ``n``
        rows: scale ``xhat``, write ``out``, update the running statistics."""
        xp = self.xp
        inv_std[...] = 1 / xp.sqrt(var + eps)
        xhat *= inv_std
        xp.multiply(xhat, gamma, out=out)
        out += beta
        running_mean *= 1 - new_weight
        running_mean += new_weight * mean
        running_var *= 1 - new_weight
        running_var += new_weight * self.running_variance_scale(n, unbiased) * var

    @staticmethod
    def running_variance_scale(n: int, unbiased: bool) -> float:
        """What a batch's biased variance is multiplied by before it enters the running variance."""
        return n / (n - 1) if unbiased and n > 1 else 1.0

    def batchnorm_forward_train_synced(
        self,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        out,
        xhat,
        inv_std,
        *,
        eps,
        new_weight,
        unbiased_running_var,
        peers,
    ):
        """:meth:`batchnorm_forward_train` with the statistics of the rows of every process: ``peers.reduce(a)``
        sums a contiguous array over the processes in place. Two reductions (the sums and count, then the squared
        deviations from the global mean: the two-pass variance, not the cancelling ``E[x^2] - E[x]^2``). Returns the
        global row count."""
        xp = self.xp
        features = x.shape[1]
        sums = xp.empty(features + 1, dtype=x.dtype)
        self.column_sum(x, sums[:features])
        sums[features] = x.shape[0]
        peers.reduce(sums)
        n = int(round(float(sums[features])))
        mean = sums[:features] / n
        xp.subtract(x, mean, out=xhat)
        squares = self.column_sum(xhat * xhat, xp.empty(features, dtype=x.dtype))
        var = peers.reduce(squares) / n
        self._normalise_and_track(mean, var, n, gamma, beta, running_mean, running_var, out, xhat, inv_std, eps,
                                  new_weight, unbiased_running_var)  # fmt: skip
        return n

    def batchnorm_backward_synced(self, dy, xhat, inv_std, gamma, dx, dgamma, dbeta, *, rows: int, peers):
        """:meth:`batchnorm_backward` through statistics of ``rows`` rows over every process. ``dgamma``/``dbeta``
        stay this process's sums (the data-parallel step weights and sums them with the other gradients); ``dx``
        needs the global sums, each process's ``dy`` scaled to the global loss by ``peers.fraction``."""
        xp = self.xp
        features = dy.shape[1]
        self.column_sum(dy, dbeta)
        self.column_sum(dy * xhat, dgamma)
        if dx is None:
            return None
        total = xp.concatenate([dbeta, dgamma]) * peers.fraction
        peers.reduce(total)
        share = peers.fraction or 1.0  # a share of weight 0: its dx is multiplied by 0 with its other gradients
        dx[...] = (gamma * inv_std / rows) * (rows * dy - (total[:features] + xhat * total[features:]) / share)
        return dx

    def batchnorm_forward_eval(self, x, gamma, beta, running_mean, running_var, out, *, eps: float):
        """``out = gamma (x - running_mean) / sqrt(running_var + eps) + beta``."""
        scale = gamma / self.xp.sqrt(running_var + eps)
        self.xp.subtract(x, running_mean, out=out)
        out *= scale
        out += beta
        return out

    def batchnorm_backward(self, dy, xhat, inv_std, gamma, dx, dgamma, dbeta):
        """``dbeta = sum dy``; ``dgamma = sum dy xhat``; ``dx = gamma inv_std / n (n dy - dbeta - xhat dgamma)``.

        ``dx`` may be ``dy``; ``dx`` may be None when the input needs no gradient.
        """
        n = dy.shape[0]
        self.column_sum(dy, dbeta)
        self.column_sum(dy * xhat, dgamma)
        if dx is not None:
            dx[...] = (gamma * inv_std / n) * (n * dy - dbeta - xhat * dgamma)
        return dx
