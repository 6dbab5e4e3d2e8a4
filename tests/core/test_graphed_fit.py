"""fit(cuda_graph=True): the recorded forward/backward and optimizer graphs train exactly as eager steps do, are
really replayed, record again when the learning rate changes, and fall back to eager steps with a reason."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import netcore
from netcore.layers import Activation, BatchNorm, Dense, Dropout
from tests.conftest import require

OPTIMIZERS = {
    "adam": lambda: netcore.optimizers.Adam(lr=1e-3),
    "sgd-momentum": lambda: netcore.optimizers.SGD(lr=0.05, momentum=0.9),
    "rmsprop": lambda: netcore.optimizers.RMSprop(lr=1e-3),
}


def build(device, optimizer="adam", dropout=0.0, batchnorm=False, l2=0.0):
    penalty = netcore.regularizers.L2(l2) if l2 else None
    layers = [Dense(64, "relu", kernel_regularizer=penalty), Dense(32, "relu"), Dense(10, "softmax")]
    if batchnorm:
        layers[1:2] = [Dense(32, use_bias=False), BatchNorm(), Activation("elu")]
    if dropout:
        layers.insert(1, Dropout(dropout))
    model = netcore.Sequential(layers, input_dim=48, device=device, seed=0)
    model.compile(OPTIMIZERS[optimizer](), "cross_entropy", schedule=netcore.schedules.StepLR(1, gamma=0.5))
    return model


def data(n=200):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 48)).astype("float32"), rng.integers(0, 10, n)


def assert_same_training(graphed, eager, history_graphed, history_eager):
    assert graphed.optimizer.step_count == eager.optimizer.step_count
    np.testing.assert_allclose(history_graphed.history["loss"], history_eager.history["loss"], rtol=1e-5)
    for a, b in zip(graphed.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


class Calls:
    """Counts how often the model's own step methods run (a replay runs none of them)."""

    def __init__(self, model, monkeypatch):
        self.counts = {"loss_and_gradients": 0, "apply_gradients": 0}
        for name in self.counts:
            method = getattr(model, name)
            monkeypatch.setattr(model, name, self._counting(name, method))

    def _counting(self, name, method):
        def wrapper(*args, **kwargs):
            self.counts[name] += 1
            return method(*args, **kwargs)

        return wrapper


@pytest.mark.parametrize(("optimizer", "batchnorm"), [(name, False) for name in OPTIMIZERS] + [("adam", True)], ids=str)
def test_graphed_fit_trains_as_eager_fit_does(cupy_backend, optimizer, batchnorm, monkeypatch, caplog):
    X, y = data()  # 200 rows in batches of 32: six full batches and one of 8 rows each epoch
    graphed, eager = (
        build(cupy_backend, optimizer, batchnorm=batchnorm),
        build(cupy_backend, optimizer, batchnorm=batchnorm),
    )
    calls = Calls(graphed, monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="netcore"):
        history_graphed = graphed.fit(X, y, epochs=3, batch_size=32, verbose=0, cuda_graph=True)
    history_eager = eager.fit(X, y, epochs=3, batch_size=32, verbose=0)
    assert_same_training(graphed, eager, history_graphed, history_eager)
    # Recording runs a step twice (once for real, once to record it); everything else was a replay.
    assert calls.counts["loss_and_gradients"] == 2 * 2  # batch sizes 32 and 8
    assert calls.counts["apply_gradients"] == 2 * 3  # recorded again each epoch: StepLR halves the rate
    assert "recorded the forward and backward pass for batches of 8 rows" in caplog.text
    assert "eagerly" not in caplog.text


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself, on the CPU stand-in
def test_a_skipped_batch_is_not_applied_by_the_graphs(cupy_backend):
    X, y = data()
    X[70] = 3e38  # finite, but it overflows the forward pass: one batch per epoch has a non-finite loss
    graphed, eager = build(cupy_backend), build(cupy_backend)
    kwargs = dict(epochs=2, batch_size=32, verbose=0, on_nonfinite="skip_batch")
    history_graphed = graphed.fit(X, y, cuda_graph=True, **kwargs)
    history_eager = eager.fit(X, y, **kwargs)
    assert history_eager.skipped_batches == 2
    assert history_graphed.skipped_batches == history_eager.skipped_batches
    assert_same_training(graphed, eager, history_graphed, history_eager)


def test_a_model_that_cannot_be_recorded_trains_eagerly_and_says_why(cupy_backend, caplog):
    X, y = data()
    graphed = build(cupy_backend, l2=0.01)
    with caplog.at_level(logging.INFO, logger="netcore"):
        history = graphed.fit(X, y, epochs=1, batch_size=32, verbose=0, cuda_graph=True)
    assert "runs eagerly" in caplog.text and "penalties" in caplog.text
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_cpu_backends_train_eagerly_with_the_flag_and_say_why(device, caplog):
    require(device)
    X, y = data()
    graphed, eager = build(device), build(device)
    with caplog.at_level(logging.INFO, logger="netcore"):
        history_graphed = graphed.fit(X, y, epochs=2, batch_size=32, verbose=0, cuda_graph=True)
    history_eager = eager.fit(X, y, epochs=2, batch_size=32, verbose=0)
    assert "no step capture" in caplog.text
    assert history_graphed.history["loss"] == history_eager.history["loss"]
    for a, b in zip(graphed.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_graphed_fit_with_sample_weights_and_validation(cupy_backend):
    X, y = data()
    weights = np.random.default_rng(1).random(len(y)) + 0.5
    graphed, eager = build(cupy_backend), build(cupy_backend)
    kwargs = dict(epochs=2, batch_size=48, verbose=0, sample_weight=weights, validation_split=0.2)
    history_graphed = graphed.fit(X, y, cuda_graph=True, **kwargs)
    history_eager = eager.fit(X, y, **kwargs)
    np.testing.assert_allclose(history_graphed.history["val_loss"], history_eager.history["val_loss"], rtol=1e-5)
    assert_same_training(graphed, eager, history_graphed, history_eager)


def test_graphed_fit_with_dropout_is_recorded_and_repeatable(cupy_backend, monkeypatch, caplog):
    X, y = data()
    runs = []
    for _ in range(2):
        model = build(cupy_backend, dropout=0.3, batchnorm=True)
        calls = Calls(model, monkeypatch)
        with caplog.at_level(logging.INFO, logger="netcore"):
            history = model.fit(X, y, epochs=3, batch_size=32, verbose=0, cuda_graph=True)
        assert calls.counts["loss_and_gradients"] == 4 and "eagerly" not in caplog.text
        runs.append((history.history["loss"], model.get_weights()))
    (losses, weights), (losses_again, weights_again) = runs
    assert losses == losses_again and losses[-1] < losses[0]  # a seed fixes the recorded masks too
    for a, b in zip(weights, weights_again, strict=True):
        np.testing.assert_array_equal(a, b)
