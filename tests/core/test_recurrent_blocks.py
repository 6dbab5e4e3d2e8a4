"""A recurrent layer whose batch is large enough runs blocks of sequences on the backend's threads, each block's
whole pass over time on its own thread: losses, weights and predictions equal one thread's, with masks, both
directions and sequence outputs, and the gradients pass the central-difference check."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import GRU, LSTM, Bidirectional, Dense, Masking, SimpleRNN
from tests.conftest import require
from tests.core.test_conv_blocks import assert_trained_alike

STEPS, FEATURES = 6, 3

NETWORKS = {
    "lstm": lambda: [LSTM(5), Dense(3, "softmax")],
    "gru masked": lambda: [Masking(0.0), GRU(4, return_sequences=True), SimpleRNN(3), Dense(3, "softmax")],
    "bidirectional backwards": lambda: [Bidirectional(LSTM(4, go_backwards=True)), Dense(3, "softmax")],
}


def data(n=11):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, STEPS, FEATURES))
    X[2, 4:] = 0.0  # padded tails, for the masked network
    X[n - 1, 3:] = 0.0
    return X, rng.integers(0, 3, n)


def train(backend, layers, dtype="float64"):
    model = netcore.Sequential(layers(), input_shape=(STEPS, FEATURES), device=backend, dtype=dtype, seed=4)
    model.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    X, y = data()
    losses = [model.train_on_batch(X, y) for _ in range(4)]
    return losses, model.get_weights(), model.predict(X, verbose=0)


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_blocks_of_sequences_train_as_one_batch(name, network, monkeypatch):
    backend = require(name)
    monkeypatch.setattr(backend, "block_threads", 1)
    one = train(backend, NETWORKS[network])
    monkeypatch.setattr(backend, "block_threads", 3)
    monkeypatch.setattr(backend, "recurrent_block_work", 1)
    split = train(backend, NETWORKS[network])
    assert_trained_alike(split, one)


def test_a_split_layer_uses_one_twin_per_block(monkeypatch):
    backend = require("numba")
    monkeypatch.setattr(backend, "block_threads", 2)
    layer = LSTM(5)
    netcore.Sequential([layer, Dense(2)], input_shape=(STEPS, FEATURES), device=backend, seed=0)
    assert layer._split(16) is None  # 16 x 20 gate values per step: not worth a second thread
    monkeypatch.setattr(backend, "recurrent_block_work", 16 * 20 // 2)
    blocks, twins = layer._split(16)
    assert [(b.start, b.stop) for b in blocks] == [(0, 8), (8, 16)] and len(twins) == 2
    assert all(twin.params["kernel"] is layer.params["kernel"] for twin in twins)


def test_split_gradients_pass_the_central_difference_check(monkeypatch):
    backend = require("numba")
    monkeypatch.setattr(backend, "block_threads", 2)
    monkeypatch.setattr(backend, "recurrent_block_work", 1)
    model = netcore.Sequential(NETWORKS["gru masked"](), input_shape=(STEPS, FEATURES), device=backend,
                               dtype="float64", seed=1)  # fmt: skip
    model.compile("sgd", "cross_entropy")
    X, y = data(6)
    netcore.check_gradients(model, X, y).raise_if_above(1e-6)
