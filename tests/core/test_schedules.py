"""Learning-rate schedules equal PyTorch's schedulers, and fit applies them."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import schedules
from netcore.layers import Dense

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")


def torch_lrs(make, epochs=30, lr=0.1):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


CASES = {
    "step": (schedules.StepLR(7, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.5)),
    "exponential": (schedules.ExponentialLR(0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    "cosine": (
        schedules.CosineAnnealingLR(20, 0.001),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 20, 0.001),
    ),
    "warmup": (
        schedules.LinearWarmup(5, start_factor=0.2),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=5),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_schedule_matches_torch(case):
    ours, make = CASES[case]
    expected = torch_lrs(make, epochs=20 if case == "cosine" else 30)
    np.testing.assert_allclose([ours.lr(0.1, t) for t in range(len(expected))], expected, rtol=1e-12)


def test_warmup_then_cosine():
    schedule = schedules.LinearWarmup(3, start_factor=0.5, after=schedules.CosineAnnealingLR(10))
    lrs = [schedule.lr(1.0, t) for t in range(14)]
    assert lrs[:3] == pytest.approx([0.5, 2 / 3, 5 / 6]) and lrs[3] == 1.0 and lrs[13] == pytest.approx(0.0)
    rebuilt = schedules.from_config("LinearWarmup", schedule.config())
    assert [rebuilt.lr(1.0, t) for t in range(14)] == lrs


def test_fit_applies_the_schedule_and_reports_lr():
    X = np.random.default_rng(0).standard_normal((40, 3)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    model = netcore.Sequential([Dense(4, "relu"), Dense(2, "softmax")], input_dim=3, device="numpy", seed=0)
    model.compile(netcore.optimizers.SGD(lr=0.1), "cross_entropy", schedule=schedules.StepLR(2, 0.5))
    history = model.fit(X, y, epochs=5, batch_size=8, verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_per_step_schedule_and_manual_lr_changes():
    X = np.ones((8, 2), "float32")
    y = np.zeros(8, "int64")
    model = netcore.Sequential([Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile(netcore.optimizers.SGD(lr=1.0), "cross_entropy", schedule=schedules.ExponentialLR(0.5, per="step"))
    model.fit(X, y, epochs=1, batch_size=2, verbose=0)
    assert model.optimizer.lr == pytest.approx(0.125)  # set before steps 1..4: 1, .5, .25, .125
    model.optimizer.lr = 0.01
    assert model.optimizer.lr == 0.01
    with pytest.raises(netcore.ConfigurationError):
        model.optimizer.lr = -1
