"""Weight initialisers. Each draws from the model's own seeded generator through its backend, so one seed gives
the same weights on every backend.

An initialiser is called as ``init(backend, rng, shape, fan_in, fan_out, dtype)``; for a Dense kernel of shape
``(n_in, n_out)``, ``fan_in = n_in`` and ``fan_out = n_out``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netcore._names import lookup
from netcore.errors import ConfigurationError


@dataclass(frozen=True)
class Initializer:
    """Base class; subclasses implement :meth:`__call__`."""

    #: True for initialisers that give every unit the same weights (the symmetry problem).
    symmetric = False

    def __call__(self, backend, rng, shape, fan_in: int, fan_out: int, dtype):
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Initializer):
    """Every entry ``value``."""

    value: float = 0.0
    symmetric = True

    def __call__(self, backend, rng, shape, fan_in, fan_out, dtype):
        return backend.full(shape, self.value, dtype)


def zeros() -> Constant:
    """All zeros: right for biases, wrong for weights (every unit would learn the same thing)."""
    return Constant(0.0)


def ones() -> Constant:
    return Constant(1.0)


@dataclass(frozen=True)
class Normal(Initializer):
    """``N(0, std^2)`` with ``std = sqrt(gain / fan)``, or a fixed ``std`` when ``gain`` is None."""

    std: float = 0.01
    gain: float | None = None
    fan: str = "in"

    def __call__(self, backend, rng, shape, fan_in, fan_out, dtype):
        std = self.std if self.gain is None else math.sqrt(self.gain / _fan(self.fan, fan_in, fan_out))
        return backend.random_normal(rng, shape, 0.0, std, dtype)


@dataclass(frozen=True)
class Uniform(Initializer):
    """``U(-limit, limit)`` with ``limit = sqrt(3 gain / fan)`` (same variance as Normal), or a fixed ``limit``."""

    limit: float = 0.01
    gain: float | None = None
    fan: str = "in"

    def __call__(self, backend, rng, shape, fan_in, fan_out, dtype):
        limit = self.limit if self.gain is None else math.sqrt(3 * self.gain / _fan(self.fan, fan_in, fan_out))
        return backend.random_uniform(rng, shape, -limit, limit, dtype)


def _fan(mode: str, fan_in: int, fan_out: int) -> float:
    return {"in": fan_in, "out": fan_out, "avg": (fan_in + fan_out) / 2}[mode]


def random_normal(std: float = 0.01) -> Normal:
    """Small random weights, the textbook ``randn * 0.01``."""
    return Normal(std=std)


def random_uniform(limit: float = 0.01) -> Uniform:
    return Uniform(limit=limit)


def keras_uniform() -> Uniform:
    """Keras's ``"uniform"``: uniform in [-0.05, 0.05]."""
    return Uniform(limit=0.05)


def keras_normal() -> Normal:
    """Keras's ``"normal"``: normal with std 0.05."""
    return Normal(std=0.05)


def he_normal() -> Normal:
    """He (Kaiming) normal: ``std = sqrt(2 / fan_in)``, for the ReLU family."""
    return Normal(gain=2.0, fan="in")


def he_uniform() -> Uniform:
    """He uniform: ``limit = sqrt(6 / fan_in)``."""
    return Uniform(gain=2.0, fan="in")


def xavier_normal() -> Normal:
    """Xavier (Glorot) normal: ``std = sqrt(2 / (fan_in + fan_out))``, for sigmoid and tanh."""
    return Normal(gain=1.0, fan="avg")


def xavier_uniform() -> Uniform:
    """Xavier (Glorot) uniform: ``limit = sqrt(6 / (fan_in + fan_out))``."""
    return Uniform(gain=1.0, fan="avg")


def lecun_normal() -> Normal:
    """LeCun normal: ``std = sqrt(1 / fan_in)``."""
    return Normal(gain=1.0, fan="in")


def lecun_uniform() -> Uniform:
    """LeCun uniform: ``limit = sqrt(3 / fan_in)``."""
    return Uniform(gain=1.0, fan="in")


@dataclass(frozen=True)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``: Keras's default recurrent kernel, whose repeated products neither
    grow nor shrink a state at initialisation."""

    gain: float = 1.0

    def __call__(self, backend, rng, shape, fan_in, fan_out, dtype):
        return backend.random_orthogonal(rng, shape, self.gain, dtype)


def orthogonal(gain: float = 1.0) -> Orthogonal:
    return Orthogonal(gain)


_FACTORIES = {
    "zeros": zeros,
    "ones": ones,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "uniform": keras_uniform,
    "normal": keras_normal,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "orthogonal": orthogonal,
}


def get(spec) -> Initializer:
    """An :class:`Initializer` from a name or an Initializer."""
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, str):
        return lookup("initializer", spec, _FACTORIES)()
    raise ConfigurationError(f"an initializer is a name or an Initializer, not {type(spec).__name__}")
