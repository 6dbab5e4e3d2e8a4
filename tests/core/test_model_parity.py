"""Whole models on every backend match the NumPy model: each layer, loss and optimizer, a few steps each."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Activation, BatchNorm, Dense, Dropout, GaussianNoise
from tests.core.test_gradients import LOSS_CASES, data
from tests.core.test_torch_oracle import OPTIMIZERS


def train(device, layers, loss, optimizer, targets, n_out, steps=5):
    model = netcore.Sequential(layers(), input_dim=4, device=device, seed=3)
    model.compile(optimizer(), loss)
    X, y = data(n_out, targets)
    losses = [model.train_on_batch(X.astype("float32"), y) for _ in range(steps)]
    return losses, model.get_weights()


def assert_same(other, layers, loss, optimizer, targets, n_out, device_random=False):
    ours = train(other.name, layers, loss, optimizer, targets, n_out)
    reference = train("numpy", layers, loss, optimizer, targets, n_out)
    if device_random and other.name.startswith("cupy"):
        return
    np.testing.assert_allclose(ours[0], reference[0], rtol=2e-5, atol=1e-6)
    for got, want in zip(ours[1], reference[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_every_loss(other_backend, case):
    final, loss, targets, n_out = LOSS_CASES[case]
    assert_same(
        other_backend,
        lambda: [Dense(5, "tanh"), Dense(n_out, final)],
        loss,
        lambda: netcore.optimizers.SGD(lr=0.1),
        targets,
        n_out,
    )


@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_every_optimizer(other_backend, case):
    cls, options = OPTIMIZERS[case]
    assert_same(
        other_backend,
        lambda: [Dense(6, "relu"), Dense(3, "softmax")],
        "cross_entropy",
        lambda: cls(**options),
        "index",
        3,
    )


LAYERS = {
    "dense": lambda: [Dense(6, "gelu", use_bias=False), Dense(2)],
    "activation": lambda: [Dense(6), Activation("elu"), Dense(2)],
    # No bias before batch norm: its gradient is exactly zero in theory, and Adam turns rounding noise into steps.
    "batchnorm": lambda: [Dense(6, use_bias=False), BatchNorm(), Dense(2)],
    "batchnorm-keras": lambda: [Dense(6, use_bias=False), BatchNorm(convention="keras"), Dense(2)],
    "dropout": lambda: [Dense(6, "relu"), Dropout(0.3), Dense(2)],
    "gaussian-noise": lambda: [GaussianNoise(0.2), Dense(6, "tanh"), Dense(2)],
    "max-norm": lambda: [Dense(6, "relu", kernel_constraint=netcore.regularizers.MaxNorm(0.5)), Dense(2)],
}


@pytest.mark.parametrize("case", list(LAYERS))
def test_every_layer(other_backend, case):
    assert_same(
        other_backend,
        LAYERS[case],
        "mse",
        lambda: netcore.optimizers.Adam(lr=1e-2),
        "real",
        2,
        device_random=case in ("dropout", "gaussian-noise"),
    )
