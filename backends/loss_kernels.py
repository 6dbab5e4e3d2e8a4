"""Loss kernels: each returns the reduced loss and writes its gradient in the same call.

Every kernel has the signature ``(pred, target, grad, scale, weights=None, **options) -> loss`` with

    loss = scale * sum_i w_i * sum_j l_ij        grad_ij = scale * w_i * d l_ij / d pred_ij

where ``w`` is an optional per-row weight vector (sample and class weights, already normalised by the caller) and
``scale`` folds in the reduction (``1/n`` for a mean over rows, ``1/(n*d)`` over elements, ``1`` for a sum). The
loss is returned as a 0-d array or number of the backend, so no step has to wait for the device.
"""

from __future__ import annotations

#: log(p) is clamped here in the probability-space losses, as PyTorch's BCELoss does.
LOG_CLAMP = -100.0
#: Smallest denominator of the probability-space gradients (PyTorch's BCELoss uses the same).
GRAD_EPS = 1e-12


class LossKernels:
    """Every loss as value + gradient over ``self.xp``; see :class:`backends.base.Backend`."""

    def _reduce(self, per_element, grad, scale, weights):
        """Apply row weights and the scale to an element-wise loss and its (already written) gradient."""
        if weights is None:
            grad *= scale
            return per_element.sum() * scale
        w = weights.reshape((-1,) + (1,) * (grad.ndim - 1))
        grad *= w * scale
        return (per_element * w).sum() * scale

    def _log(self, x):
        """``max(log x, -100)``, without evaluating log(0)."""
        xp = self.xp
        positive = x > 0
        return xp.where(positive, xp.maximum(xp.log(xp.where(positive, x, 1)), LOG_CLAMP), LOG_CLAMP)

    def _log1m(self, x):
        """``max(log(1 - x), -100)``, without evaluating log(0)."""
        xp = self.xp
        below = x < 1
        return xp.where(below, xp.maximum(xp.log1p(-xp.where(below, x, 0)), LOG_CLAMP), LOG_CLAMP)

    def _smoothed_targets(self, target, n_classes: int, dtype, label_smoothing: float):
        """Class-probability targets ``q = (1 - eps) * t + eps / C``, from class indices or probability rows."""
        xp = self.xp
        if target.ndim == 1:
            q = xp.zeros((target.shape[0], n_classes), dtype=dtype)
            q[xp.arange(target.shape[0]), target] = 1
        else:
            q = target.astype(dtype, copy=True)
        if label_smoothing:
            q *= 1 - label_smoothing
            q += label_smoothing / n_classes
        return q

    # ----------------------------------------------------------------- fused logits losses
    def softmax_cross_entropy(self, logits, target, grad, scale, weights=None, label_smoothing: float = 0.0):
        """Softmax + categorical cross-entropy from logits, log-sum-exp stable.

        ``l_i = -sum_j q_ij log softmax(z_i)_j`` and ``grad_i = softmax(z_i) * sum_j q_ij - q_i``.
        """
        xp = self.xp
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_sum
        q = self._smoothed_targets(target, logits.shape[1], logits.dtype, label_smoothing)
        grad[...] = xp.exp(log_p) * q.sum(axis=1, keepdims=True) - q
        return self._reduce(-(q * log_p), grad, scale, weights)

    def sigmoid_cross_entropy(self, logits, target, grad, scale, weights=None, pos_weight=None):
        """Sigmoid + binary cross-entropy from logits, stable for any logit.

        ``l = (1 - t) z + (1 + (w_pos - 1) t) * softplus(-z)``; ``grad = (1 - t) - (1 + (w_pos - 1) t) sigmoid(-z)``.
        """
        xp = self.xp
        coef = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
        softplus_neg = xp.log1p(xp.exp(-xp.abs(logits))) + xp.maximum(-logits, 0)
        e = xp.exp(-xp.abs(logits))
        sigmoid_neg = xp.where(logits >= 0, e / (1 + e), 1 / (1 + e))
        grad[...] = (1 - target) - coef * sigmoid_neg
        return self._reduce((1 - target) * logits + coef * softplus_neg, grad, scale, weights)

    # ----------------------------------------------------------------- probability-space and regression losses
    def binary_cross_entropy(self, pred, target, grad, scale, weights=None):
        """``l = -(t log p + (1 - t) log(1 - p))`` with logs clamped at -100, as PyTorch's BCELoss."""
        xp = self.xp
        log_p, log_1mp = self._log(pred), self._log1m(pred)
        grad[...] = (pred - target) / xp.maximum(pred * (1 - pred), GRAD_EPS)
        return self._reduce(-(target * log_p + (1 - target) * log_1mp), grad, scale, weights)

    def categorical_cross_entropy(self, pred, target, grad, scale, weights=None, label_smoothing: float = 0.0):
        """``l_i = -sum_j q_ij log p_ij`` on probabilities (log clamped at -100)."""
        xp = self.xp
        q = self._smoothed_targets(target, pred.shape[1], pred.dtype, label_smoothing)
        grad[...] = -q / xp.maximum(pred, GRAD_EPS)
        return self._reduce(-(q * self._log(pred)), grad, scale, weights)

    def kl_divergence(self, pred, target, grad, scale, weights=None):
        """``l_i = sum_j t_ij (log t_ij - log p_ij)`` with ``0 log 0 = 0`` (Keras's KLDivergence on probabilities)."""
        xp = self.xp
        log_t = xp.where(target > 0, xp.log(xp.where(target > 0, target, 1)), 0)
        grad[...] = -target / xp.maximum(pred, GRAD_EPS)
        return self._reduce(target * (log_t - self._log(pred)), grad, scale, weights)

    def mean_squared_error(self, pred, target, grad, scale, weights=None):
        """``l = (p - t)^2``."""
        diff = pred - target
        grad[...] = 2 * diff
        return self._reduce(diff * diff, grad, scale, weights)

    def mean_absolute_error(self, pred, target, grad, scale, weights=None):
        """``l = |p - t|``; the gradient at 0 is 0, as in PyTorch."""
        diff = pred - target
        grad[...] = self.xp.sign(diff)
        return self._reduce(self.xp.abs(diff), grad, scale, weights)

    def huber(self, pred, target, grad, scale, weights=None, delta: float = 1.0):
        """``l = d^2 / 2`` for ``|d| <= delta``, else ``delta (|d| - delta / 2)`` (PyTorch's HuberLoss)."""
        xp = self.xp
        diff = pred - target
        small = xp.abs(diff) <= delta
        grad[...] = xp.clip(diff, -delta, delta)
        per = xp.where(small, 0.5 * diff * diff, delta * (xp.abs(diff) - 0.5 * delta))
        return self._reduce(per, grad, scale, weights)

    def poisson_nll(self, pred, target, grad, scale, weights=None, log_input: bool = True, eps: float = 1e-8):
        """PyTorch's PoissonNLLLoss: ``l = exp(p) - t p`` when ``p`` is a log-rate (``log_input``), else
        ``l = p - t log(p + eps)``."""
        xp = self.xp
        if log_input:
            rate = xp.exp(pred)
            grad[...] = rate - target
            return self._reduce(rate - target * pred, grad, scale, weights)
        grad[...] = 1 - target / (pred + eps)
        return self._reduce(pred - target * xp.log(pred + eps), grad, scale, weights)

    def hinge(self, pred, target, grad, scale, weights=None):
        """Binary hinge with labels in {-1, +1}: ``l = max(0, 1 - t p)``."""
        margin = 1 - target * pred
        active = margin > 0
        grad[...] = -target * active
        return self._reduce(margin * active, grad, scale, weights)

    def multiclass_hinge(self, pred, target, grad, scale, weights=None, margin: float = 1.0):
        """``l_i = sum_{j != y_i} max(0, margin - x_{i,y_i} + x_ij) / C`` (PyTorch's MultiMarginLoss)."""
        xp = self.xp
        n, c = pred.shape
        rows = xp.arange(n)
        true_score = pred[rows, target][:, None]
        slack = margin - true_score + pred
        active = (slack > 0).astype(pred.dtype)
        active[rows, target] = 0
        grad[...] = active / c
        grad[rows, target] = -active.sum(axis=1) / c
        return self._reduce(slack * active / c, grad, scale, weights)
