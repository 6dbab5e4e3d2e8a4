"""Activation kernels: ``bias_activation`` (forward) and ``activation_backward``, as array expressions.

Each activation is a pair of private methods ``_<kind>_forward(z, alpha, out)`` and
``_<kind>_backward(dy, y, z, alpha, out)``. The backward pass works from the output ``y`` wherever the derivative
can be written in terms of it (ReLU, sigmoid, tanh, ...) so layers need not keep the pre-activation; only the
kinds in :data:`NEEDS_PREACTIVATION` receive ``z``.
"""

from __future__ import annotations

import math

#: Activations whose derivative needs the pre-activation ``z`` rather than the output ``y``.
NEEDS_PREACTIVATION = frozenset({"gelu", "gelu_tanh"})
#: Every activation the kernels know (``step`` has no backward: it is not differentiable).
KINDS = ("linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "gelu_tanh", "softmax", "step")

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715


class ActivationKernels:
    """Forward and backward of every activation over ``self.xp``; see :class:`backends.base.Backend`. Also the ReLU
    of Keras's ``ReLU`` layer, with its ceiling, slope and threshold."""

    def relu_forward(self, x, max_value, negative_slope: float, threshold: float, out, scratch):
        """Keras's ``ReLU``: ``x`` where ``threshold <= x``, ``negative_slope * (x - threshold)`` below, capped at
        ``max_value`` (None: no cap). ``scratch`` is a work array like ``x``."""
        xp = self.xp
        out[...] = x >= threshold
        out *= x
        if negative_slope:
            xp.minimum(x, threshold, out=scratch)
            scratch -= threshold
            scratch *= negative_slope
            out += scratch
        if max_value is not None:
            xp.minimum(out, max_value, out=out)
        return out

    def relu_backward(self, dy, x, max_value, negative_slope: float, threshold: float, out):
        """The gradient of :meth:`relu_forward`: ``dy`` where ``threshold < x < max_value``, ``negative_slope * dy``
        below the threshold, 0 above the cap."""
        out[...] = x > threshold
        if max_value is not None:
            out *= x < max_value
        if negative_slope:
            out += (x <= threshold) * negative_slope
        out *= dy
        return out

    def bias_activation(self, z, b, kind: str, alpha: float, out):
        """``z += b`` (when ``b`` is not None), then ``out = f(z)``. ``out`` may be ``z`` itself."""
        if b is not None:
            self.xp.add(z, b, out=z)
        return self.activation_forward(z, kind, alpha, out)

    def activation_forward(self, z, kind: str, alpha: float, out):
        """``out = f(z)`` for activation ``kind`` with parameter ``alpha``; ``out`` may be ``z``."""
        getattr(self, _kernel_name(kind, "forward"))(z, alpha, out)
        return out

    def activation_backward(self, dy, y, z, kind: str, alpha: float, out):
        """``out = dy * f'(z)``, from the output ``y`` (and ``z`` for :data:`NEEDS_PREACTIVATION`); may alias dy."""
        getattr(self, _kernel_name(kind, "backward"))(dy, y, z, alpha, out)
        return out

    def erfc(self, x):
        """The complementary error function, element-wise (GELU needs it); NumPy has none, SciPy does."""
        from scipy.special import erfc

        return erfc(x)

    def _sigmoid(self, x):
        """``1 / (1 + exp(-x))`` with ``exp`` only ever seeing ``-|x|``: no overflow, full precision in both tails."""
        xp = self.xp
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    # ----------------------------------------------------------------- the formulas
    def _linear_forward(self, z, alpha, out):
        if out is not z:
            out[...] = z

    def _linear_backward(self, dy, y, z, alpha, out):
        if out is not dy:
            out[...] = dy

    def _relu_forward(self, z, alpha, out):
        self.xp.maximum(z, 0, out=out)

    def _relu_backward(self, dy, y, z, alpha, out):
        self.xp.multiply(dy, y > 0, out=out)

    def _leaky_relu_forward(self, z, alpha, out):
        out[...] = self.xp.where(z > 0, z, z * alpha)

    def _leaky_relu_backward(self, dy, y, z, alpha, out):
        # y > 0 exactly where z > 0 because alpha >= 0.
        out[...] = self.xp.where(y > 0, dy, dy * alpha)

    def _elu_forward(self, z, alpha, out):
        xp = self.xp
        out[...] = xp.where(z > 0, z, alpha * xp.expm1(xp.minimum(z, 0)))

    def _elu_backward(self, dy, y, z, alpha, out):
        # For z <= 0, f'(z) = alpha * exp(z) = y + alpha.
        out[...] = self.xp.where(y > 0, dy, dy * (y + alpha))

    def _sigmoid_forward(self, z, alpha, out):
        out[...] = self._sigmoid(z)

    def _sigmoid_backward(self, dy, y, z, alpha, out):
        out[...] = dy * y * (1 - y)

    def _tanh_forward(self, z, alpha, out):
        self.xp.tanh(z, out=out)

    def _tanh_backward(self, dy, y, z, alpha, out):
        out[...] = dy * (1 - y * y)

    def _softplus_forward(self, z, alpha, out):
        xp = self.xp
        out[...] = xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))

    def _softplus_backward(self, dy, y, z, alpha, out):
        # f'(z) = sigmoid(z) = 1 - exp(-y), computed as -expm1(-y) to keep precision for small y.
        out[...] = -dy * self.xp.expm1(-y)

    # Both GELUs are z times a CDF that is written so that its far negative tail keeps its precision: the textbook
    # 0.5 (1 + erf(z / sqrt 2)) and 0.5 (1 + tanh(u)) cancel to a few correct bits there in float32.
    def _gelu_forward(self, z, alpha, out):
        out[...] = 0.5 * z * self.erfc(z * (-1 / math.sqrt(2.0)))

    def _gelu_backward(self, dy, y, z, alpha, out):
        xp = self.xp
        cdf = 0.5 * self.erfc(z * (-1 / math.sqrt(2.0)))
        pdf = xp.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))
        out[...] = dy * (cdf + z * pdf)

    def _gelu_tanh_forward(self, z, alpha, out):
        # 0.5 (1 + tanh(u)) = sigmoid(2u)
        out[...] = z * self._sigmoid(2 * _SQRT_2_OVER_PI * (z + _GELU_TANH_C * z * z * z))

    def _gelu_tanh_backward(self, dy, y, z, alpha, out):
        # d/dz = s + 0.5 z (1 - tanh(u)^2) u' with s = sigmoid(2u), and 1 - tanh(u)^2 = 4 s (1 - s)
        s = self._sigmoid(2 * _SQRT_2_OVER_PI * (z + _GELU_TANH_C * z * z * z))
        slope = _SQRT_2_OVER_PI * (1 + 3 * _GELU_TANH_C * z * z)
        out[...] = dy * (s + 2 * z * s * (1 - s) * slope)

    def _softmax_forward(self, z, alpha, out):
        xp = self.xp
        e = xp.exp(z - z.max(axis=1, keepdims=True))
        out[...] = e / e.sum(axis=1, keepdims=True)

    def _softmax_backward(self, dy, y, z, alpha, out):
        out[...] = y * (dy - (dy * y).sum(axis=1, keepdims=True))

    def _step_forward(self, z, alpha, out):
        out[...] = z >= 0

    def _step_backward(self, dy, y, z, alpha, out):
        raise ValueError("the step activation has no gradient; use it for inference only")


#: ``(kind, pass) -> "_{kind}_{pass}"``, each name made once: a name built on every call is a new string, which
#: the interpreter's method cache then keeps alive (a training step would seem to allocate).
_KERNEL_NAMES: dict[tuple[str, str], str] = {}


def _kernel_name(kind: str, pass_name: str) -> str:
    name = _KERNEL_NAMES.get((kind, pass_name))
    if name is None:
        name = _KERNEL_NAMES[(kind, pass_name)] = f"_{kind}_{pass_name}"
    return name
