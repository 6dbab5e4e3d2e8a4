"""Learning-rate schedules (PyTorch's names and formulas), applied by ``fit`` at every epoch or every step.

``model.compile(optimizer, loss, schedule=CosineAnnealingLR(T_max=50))``: before each epoch (``per="epoch"``, the
default) or each step (``per="step"``) ``fit`` sets ``optimizer.lr = schedule.lr(initial_lr, t)``, where ``t``
counts the epochs (steps) already done. The closed forms equal PyTorch's schedulers stepped once per epoch.
"""

from __future__ import annotations

import math

from netcore.errors import ConfigurationError


class Schedule:
    """Base class: ``lr(base_lr, t)`` is the learning rate after ``t`` epochs or steps."""

    def __init__(self, per: str = "epoch"):
        if per not in ("epoch", "step"):
            raise ConfigurationError(f"a schedule runs per 'epoch' or per 'step', not {per!r}")
        self.per = per

    def lr(self, base_lr: float, t: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        return dict(vars(self))


class StepLR(Schedule):
    """``lr = base_lr * gamma ** (t // step_size)``."""

    def __init__(self, step_size: int, gamma: float = 0.1, per: str = "epoch"):
        super().__init__(per)
        if step_size <= 0 or gamma <= 0:
            raise ConfigurationError("StepLR needs step_size > 0 and gamma > 0")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(Schedule):
    """``lr = base_lr * gamma ** t``."""

    def __init__(self, gamma: float, per: str = "epoch"):
        super().__init__(per)
        if gamma <= 0:
            raise ConfigurationError("ExponentialLR needs gamma > 0")
        self.gamma = float(gamma)

    def lr(self, base_lr, t):
        return base_lr * self.gamma**t


class CosineAnnealingLR(Schedule):
    """``lr = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2`` for ``t <= T_max``, then ``eta_min``."""

    def __init__(self, T_max: int, eta_min: float = 0.0, per: str = "epoch"):  # noqa: N803 - PyTorch's name
        super().__init__(per)
        if T_max <= 0 or eta_min < 0:
            raise ConfigurationError("CosineAnnealingLR needs T_max > 0 and eta_min >= 0")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def lr(self, base_lr, t):
        t = min(t, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(Schedule):
    """Linear warm-up from ``start_factor * base_lr`` to ``end_factor * base_lr`` over ``warmup`` epochs or steps
    (PyTorch's LinearLR), then ``after`` (another schedule, counted from the end of the warm-up) or constant."""

    def __init__(
        self,
        warmup: int,
        start_factor: float = 1 / 3,
        end_factor: float = 1.0,
        after: Schedule | None = None,
        per: str = "epoch",
    ):
        super().__init__(per)
        if warmup <= 0 or not 0 < start_factor <= 1 or not 0 < end_factor <= 1:
            raise ConfigurationError("LinearWarmup needs warmup > 0 and factors in (0, 1]")
        self.warmup, self.start_factor, self.end_factor, self.after = int(warmup), start_factor, end_factor, after

    def lr(self, base_lr, t):
        if t < self.warmup:
            return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * t / self.warmup)
        peak = base_lr * self.end_factor
        return peak if self.after is None else self.after.lr(peak, t - self.warmup)

    def config(self):
        config = dict(vars(self))
        config["after"] = None if self.after is None else {type(self.after).__name__: self.after.config()}
        return config


_SCHEDULES = {cls.__name__: cls for cls in (StepLR, ExponentialLR, CosineAnnealingLR, LinearWarmup)}


def from_config(name: str, config: dict) -> Schedule:
    config = dict(config)
    if config.get("after"):
        ((inner, inner_config),) = config["after"].items()
        config["after"] = from_config(inner, inner_config)
    return _SCHEDULES[name](**config)
