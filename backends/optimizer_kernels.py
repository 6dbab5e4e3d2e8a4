"""Optimizer kernels: one in-place update of a flat parameter buffer per call, PyTorch's update rules exactly.

``p`` (parameters), ``g`` (gradients) and every state buffer are 1-D arrays of the same length holding all of a
model's parameters, so one call updates the whole model. ``g`` may be overwritten (weight decay is added to it).
``tmp`` is a caller-owned scratch buffer of the same length, so these defaults allocate nothing per step either.
Per-step scalars (bias corrections, schedules) are computed on the host by the optimizer and passed in.
"""

from __future__ import annotations

import math


class OptimizerKernels:
    """In-place optimizer updates over ``self.xp``; see :class:`backends.base.Backend`."""

    @staticmethod
    def weight_decay_terms(lr: float, weight_decay: float, decoupled: bool) -> tuple[float, float]:
        """(factor applied to ``p`` first, coefficient added to ``g``): ``(1 - lr wd, 0)`` for decoupled (AdamW)
        decay, ``(1, wd)`` for L2 decay. Fused kernels apply both in one pass."""
        return (1 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)

    @staticmethod
    def nadam_coefficients(lr, mu, mu_next, mu_product, mu_product_next) -> tuple[float, float]:
        """NAdam's step sizes for ``g / denom`` and ``m / denom``."""
        return lr * (1 - mu) / (1 - mu_product), lr * mu_next / (1 - mu_product_next)

    def clip_global_norm(self, g, max_norm: float) -> float:
        """``g *= min(1, max_norm / (||g|| + 1e-6))``, ``||g||`` the Euclidean norm of the whole buffer (PyTorch's
        ``clip_grad_norm_``, including its 1e-6); returns that norm (read on the host)."""
        norm = math.sqrt(self.to_float(self.sum_squares(g)))
        factor = max_norm / (norm + 1e-6)
        if factor < 1:
            g *= g.dtype.type(factor)
        return norm

    def clip_values(self, g, limit: float) -> None:
        """``g = clip(g, -limit, limit)`` in place (PyTorch's ``clip_grad_value_``)."""
        self.xp.clip(g, -limit, limit, out=g)

    def sgd_step(self, p, g, buf, tmp, *, lr, momentum, dampening, weight_decay, nesterov, first_step):
        """``g += wd p``; ``buf = g`` (first step) or ``momentum buf + (1 - dampening) g``;
        ``p -= lr (g + momentum buf)`` with Nesterov, else ``p -= lr buf`` (``p -= lr g`` without momentum)."""
        xp = self.xp
        if weight_decay:
            xp.multiply(p, weight_decay, out=tmp)
            g += tmp
        if momentum:
            if first_step:
                buf[...] = g
            else:
                buf *= momentum
                xp.multiply(g, 1 - dampening, out=tmp)
                buf += tmp
            if nesterov:
                xp.multiply(buf, momentum, out=tmp)
                g += tmp
            else:
                g = buf
        xp.multiply(g, lr, out=tmp)
        p -= tmp

    def adam_step(self, p, g, m, v, vmax, tmp, *, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step):
        """Adam / AdamW: ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
        ``p -= lr / (1 - b1^t) * m / (sqrt(v') / sqrt(1 - b2^t) + eps)`` with ``v' = max(vmax, v)`` under AMSGrad.
        Weight decay is L2 (``g += wd p``) for Adam and decoupled (``p *= 1 - lr wd``) for AdamW."""
        xp = self.xp
        if weight_decay:
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                xp.multiply(p, weight_decay, out=tmp)
                g += tmp
        m *= beta1
        xp.multiply(g, 1 - beta1, out=tmp)
        m += tmp
        v *= beta2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v += tmp
        if amsgrad:
            xp.maximum(vmax, v, out=vmax)
        # step_size * m / denom as m / (denom / step_size): the step size folded into the denominator saves a pass.
        step_size = lr / (1 - beta1**step)
        xp.sqrt(vmax if amsgrad else v, out=tmp)
        tmp *= 1 / ((1 - beta2**step) ** 0.5 * step_size)
        tmp += eps / step_size
        xp.divide(m, tmp, out=tmp)
        p -= tmp

    def adagrad_step(self, p, g, state_sum, tmp, *, lr, lr_decay, weight_decay, eps, step):
        """``sum += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps)``."""
        xp = self.xp
        if weight_decay:
            xp.multiply(p, weight_decay, out=tmp)
            g += tmp
        xp.multiply(g, g, out=tmp)
        state_sum += tmp
        xp.sqrt(state_sum, out=tmp)
        tmp += eps
        xp.divide(g, tmp, out=tmp)
        tmp *= lr / (1 + (step - 1) * lr_decay)
        p -= tmp

    def rmsprop_step(self, p, g, square_avg, grad_avg, buf, tmp, *, lr, alpha, eps, weight_decay, momentum, centered):
        """``s = alpha s + (1 - alpha) g^2``; ``avg = sqrt(s - gbar^2) + eps`` (centered, with
        ``gbar = alpha gbar + (1 - alpha) g``) or ``sqrt(s) + eps``; ``buf = momentum buf + g / avg`` and
        ``p -= lr buf`` with momentum, else ``p -= lr g / avg``."""
        xp = self.xp
        if weight_decay:
            xp.multiply(p, weight_decay, out=tmp)
            g += tmp
        square_avg *= alpha
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - alpha
        square_avg += tmp
        if centered:
            grad_avg *= alpha
            xp.multiply(g, 1 - alpha, out=tmp)
            grad_avg += tmp
            xp.multiply(grad_avg, grad_avg, out=tmp)
            xp.subtract(square_avg, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(square_avg, out=tmp)
        tmp += eps
        xp.divide(g, tmp, out=tmp)
        if momentum:
            buf *= momentum
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
        else:
            tmp *= lr
        p -= tmp

    def adadelta_step(self, p, g, square_avg, acc_delta, tmp, *, lr, rho, eps, weight_decay):
        """``s = rho s + (1 - rho) g^2``; ``d = sqrt(a + eps) / sqrt(s + eps) * g``;
        ``a = rho a + (1 - rho) d^2``; ``p -= lr d``."""
        xp = self.xp
        if weight_decay:
            xp.multiply(p, weight_decay, out=tmp)
            g += tmp
        square_avg *= rho
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - rho
        square_avg += tmp
        # d is built in g: g <- g * sqrt(a + eps) / sqrt(s + eps)
        xp.add(acc_delta, eps, out=tmp)
        xp.sqrt(tmp, out=tmp)
        g *= tmp
        xp.add(square_avg, eps, out=tmp)
        xp.sqrt(tmp, out=tmp)
        g /= tmp
        acc_delta *= rho
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - rho
        acc_delta += tmp
        xp.multiply(g, lr, out=tmp)
        p -= tmp

    def nadam_step(
        self,
        p,
        g,
        m,
        v,
        tmp,
        *,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled,
        step,
        mu,
        mu_next,
        mu_product,
        mu_product_next,
    ):
        """NAdam: ``m``, ``v`` as Adam; ``denom = sqrt(v / (1 - b2^t)) + eps``;
        ``p -= lr (1 - mu) / (1 - prod mu) * g / denom + lr mu' / (1 - prod mu * mu') * m / denom``."""
        xp = self.xp
        if weight_decay:
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                xp.multiply(p, weight_decay, out=tmp)
                g += tmp
        m *= beta1
        xp.multiply(g, 1 - beta1, out=tmp)
        m += tmp
        v *= beta2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v += tmp
        xp.divide(v, 1 - beta2**step, out=tmp)
        xp.sqrt(tmp, out=tmp)
        tmp += eps
        g /= tmp
        g *= lr * (1 - mu) / (1 - mu_product)
        p -= g
        xp.divide(m, tmp, out=tmp)
        tmp *= lr * mu_next / (1 - mu_product_next)
        p -= tmp
