"""A recurrent training step allocates nothing after the first batch (numba: tracemalloc; the CuPy backend: the
stand-in's allocation counter), and records into CUDA graphs for a fixed sequence length that train exactly as eager
steps do."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import netcore
from netcore.layers import GRU, LSTM, Dense, SimpleRNN
from tests.conftest import require
from tests.core.memory import host_growth, stand_in_allocations

SHAPE = (9, 4)


def rnn(device, seed=0):
    layers = [LSTM(8, return_sequences=True), GRU(6, return_sequences=True, go_backwards=True), SimpleRNN(5)]
    model = netcore.Sequential([*layers, Dense(3, "softmax")], input_shape=SHAPE, device=device, seed=seed)
    return model.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")


def data(n=48):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, *SHAPE)).astype("float32"), rng.integers(0, 3, n)


def test_numba_recurrent_steps_allocate_nothing():
    require("numba")
    model = rnn("numba")
    X, Y, _ = model.prepare(*data(16))
    peak, lasting = host_growth(lambda: model.train_step(X, Y), repeats=5)
    # Python's small objects only (the views of each step); the smallest work buffer is 1.2 KiB, a step's are
    # ten times that and there are 27 steps.
    assert peak < 16384, f"a step allocated {peak} bytes"
    assert lasting < 4096


def test_cpu_stand_in_recurrent_steps_allocate_nothing():
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    with cupy_on_cpu() as backend:
        model = rnn(backend)
        X, Y, _ = model.prepare(*data(16))
        assert stand_in_allocations(lambda: model.train_step(X, Y), repeats=3) == 0


def test_graphed_recurrent_fit_trains_as_eager_fit_does(cupy_backend, caplog):
    X, y = data()
    graphed, eager = rnn(cupy_backend), rnn(cupy_backend)
    with caplog.at_level(logging.INFO, logger="netcore"):
        history_graphed = graphed.fit(X, y, epochs=2, batch_size=16, verbose=0, cuda_graph=True)
    assert "eagerly" not in caplog.text
    history_eager = eager.fit(X, y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_allclose(history_graphed.history["loss"], history_eager.history["loss"], rtol=1e-5)
    for a, b in zip(graphed.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_numba_and_cupy_train_a_recurrent_model_as_numpy_does(other_backend):
    X, y = data(32)
    reference, model = rnn("numpy", seed=2), rnn(other_backend, seed=2)
    for m in (reference, model):
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
