"""Weight penalties and constraints.

``L2(l2)`` adds ``l2 * sum(W^2)`` to the loss (Keras's convention) and ``2 * l2 * W`` to the gradient. The textbook
penalty ``lambda / (2 m) * ||W||^2`` (``m`` training examples, added to the mean loss) is ``L2(lambda / (2 m))``.
For plain SGD, ``weight_decay=wd`` is the same update as ``L2(wd / 2)``; for Adam it is not (that is why AdamW
exists), and decoupled decay is AdamW's ``weight_decay``.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore._names import lookup
from netcore.errors import ConfigurationError


@dataclass(frozen=True)
class Regularizer:
    """``penalty(W) = l1 * sum|W| + l2 * sum(W^2)``; gradient ``l1 * sign(W) + 2 * l2 * W``."""

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self):
        if self.l1 < 0 or self.l2 < 0:
            raise ConfigurationError(f"regularisation strengths must be >= 0, got l1={self.l1}, l2={self.l2}")

    def penalty(self, backend, w):
        total = 0.0
        if self.l1:
            total = total + self.l1 * backend.sum_abs(w)
        if self.l2:
            total = total + self.l2 * backend.sum_squares(w)
        return total

    def add_gradient(self, backend, w, grad) -> None:
        backend.add_penalty_gradient(w, grad, self.l1, self.l2)


def L1(l1: float = 0.01) -> Regularizer:  # noqa: N802 - the conventional name
    """``l1 * sum|W|`` (sparsity; its gradient at 0 is taken as 0)."""
    return Regularizer(l1=l1)


def L2(l2: float = 0.01) -> Regularizer:  # noqa: N802
    """``l2 * sum(W^2)``."""
    return Regularizer(l2=l2)


def L1L2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:  # noqa: N802
    return Regularizer(l1=l1, l2=l2)


def get(spec) -> Regularizer | None:
    """A :class:`Regularizer` from None, a name, a config dict or a Regularizer."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, dict):
        return Regularizer(**spec)
    if isinstance(spec, str):
        return lookup("regularizer", spec, {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2})()
    raise ConfigurationError(f"a regularizer is a name or a Regularizer, not {type(spec).__name__}")


@dataclass(frozen=True)
class MaxNorm:
    """After each update, rescale every unit's incoming weight vector (a column of ``W``) to norm <= ``max_value``."""

    max_value: float = 3.0

    def __post_init__(self):
        if not self.max_value > 0:
            raise ConfigurationError(f"MaxNorm max_value must be positive, got {self.max_value}")

    def apply(self, backend, w) -> None:
        backend.clip_column_norms(w, self.max_value)


def get_constraint(spec) -> MaxNorm | None:
    """A :class:`MaxNorm` from None, a config dict or a MaxNorm."""
    if spec is None or isinstance(spec, MaxNorm):
        return spec
    if isinstance(spec, dict):
        return MaxNorm(**spec)
    raise ConfigurationError(f"a constraint is a MaxNorm, not {type(spec).__name__}")


def to_config(obj) -> dict | None:
    """The constructor arguments of a regularizer or constraint (None stays None)."""
    return None if obj is None else dict(vars(obj))
