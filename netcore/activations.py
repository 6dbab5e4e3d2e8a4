"""Activation functions: a name, an optional parameter, and the backend kernels that compute them.

The formulas live in :mod:`backends.activation_kernels` (array expressions) with fused versions in the numba and
cupy backends. An :class:`Activation` here is only the description a layer needs: which kernel, its ``alpha``, the
initialiser that suits it, and whether its derivative needs the pre-activation.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore._names import lookup
from netcore.errors import ConfigurationError

_NEEDS_PRE = frozenset({"gelu", "gelu_tanh"})
_HE_FAMILY = frozenset({"relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "softplus"})


@dataclass(frozen=True)
class Activation:
    """``kind`` names the kernel; ``alpha`` is the leaky-ReLU slope or the ELU scale."""

    kind: str
    alpha: float = 0.0

    @property
    def needs_preactivation(self) -> bool:
        """True when the backward pass needs ``z`` and not just the output."""
        return self.kind in _NEEDS_PRE

    @property
    def differentiable(self) -> bool:
        return self.kind != "step"

    @property
    def elementwise(self) -> bool:
        """Whether each output depends on its own input only (every kind but the row-wise softmax)."""
        return self.kind != "softmax"

    @property
    def default_initializer(self) -> str:
        """He for the ReLU family, Xavier (Glorot) otherwise."""
        return "he_normal" if self.kind in _HE_FAMILY else "xavier_uniform"

    def __call__(self, backend, z, out=None):
        """Apply to a backend array (a new array unless ``out`` is given)."""
        out = backend.empty(z.shape, z.dtype) if out is None else out
        return backend.activation_forward(z, self.kind, self.alpha, out)


def linear() -> Activation:
    """``f(z) = z``."""
    return Activation("linear")


def relu() -> Activation:
    """``f(z) = max(z, 0)``."""
    return Activation("relu")


def leaky_relu(negative_slope: float = 0.01) -> Activation:
    """``f(z) = z`` for ``z > 0``, else ``negative_slope * z`` (PyTorch's name and default)."""
    if not 0 <= negative_slope < 1:
        raise ConfigurationError(f"leaky_relu negative_slope must be in [0, 1), got {negative_slope}")
    return Activation("leaky_relu", float(negative_slope))


def elu(alpha: float = 1.0) -> Activation:
    """``f(z) = z`` for ``z > 0``, else ``alpha (exp(z) - 1)``."""
    if not alpha > 0:
        raise ConfigurationError(f"elu alpha must be positive, got {alpha}")
    return Activation("elu", float(alpha))


def sigmoid() -> Activation:
    """``f(z) = 1 / (1 + exp(-z))``, evaluated without overflow for any ``z``."""
    return Activation("sigmoid")


def tanh() -> Activation:
    """``f(z) = tanh(z)``."""
    return Activation("tanh")


def softplus() -> Activation:
    """``f(z) = log(1 + exp(z))``, evaluated stably as ``max(z, 0) + log1p(exp(-|z|))``."""
    return Activation("softplus")


def gelu(approximate: str = "none") -> Activation:
    """``f(z) = z * Phi(z)`` (exact, with erf), or PyTorch's ``approximate="tanh"`` form."""
    if approximate not in ("none", "tanh"):
        raise ConfigurationError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    return Activation("gelu" if approximate == "none" else "gelu_tanh")


def softmax() -> Activation:
    """Row-wise ``exp(z_j) / sum_k exp(z_k)``; fused with cross-entropy when it ends a model."""
    return Activation("softmax")


def step() -> Activation:
    """The perceptron's Heaviside step, ``1`` for ``z >= 0`` else ``0``: forward only, not trainable."""
    return Activation("step")


_FACTORIES = {
    "linear": linear,
    "identity": linear,
    "none": linear,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "sigmoid": sigmoid,
    "logistic": sigmoid,
    "tanh": tanh,
    "softplus": softplus,
    "gelu": gelu,
    "gelu_tanh": lambda: gelu("tanh"),
    "softmax": softmax,
    "step": step,
}


def get(spec) -> Activation:
    """An :class:`Activation` from a name, an Activation, or None (linear)."""
    if spec is None:
        return linear()
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        return lookup("activation", spec, _FACTORIES)()
    raise ConfigurationError(f"an activation is a name or an Activation, not {type(spec).__name__}")
