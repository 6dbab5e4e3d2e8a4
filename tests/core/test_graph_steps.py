"""A graph's training step keeps the properties of a Sequential one: nothing allocated once warmed up (numba with
tracemalloc, the CuPy stand-in with its counter), recordable as a CUDA graph (compile_step and fit(cuda_graph=True)
replay what eager steps compute), and models that cannot be recorded say why."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Activation, Add, BatchNorm, Concatenate, Dense, Dropout, Input, Maximum, Subtract
from netcore.models import Model
from tests.conftest import require
from tests.core.memory import host_growth, stand_in_allocations
from tests.core.test_allocations import SLACK_BYTES


def graph(device, seed=0):
    """Two inputs, a shared layer, fan-out, a residual sum, a maximum, batch norm and dropout."""
    a, b = Input((24,)), Input((24,))
    shared = Dense(32, "relu")
    left, right = shared(a), shared(b)
    h = Add()([left, Dense(32, "tanh")(left)])
    h = Concatenate()([h, Maximum()([left, right]), Subtract()([left, right])])
    h = Dropout(0.1)(Activation("relu")(BatchNorm()(Dense(48, use_bias=False)(h))))
    model = Model([a, b], Dense(10, "softmax")(h), device=device, seed=seed)
    model.compile(netcore.optimizers.Adam(lr=1e-3), "cross_entropy")
    return model


def batch(rows=32):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((rows, 24)).astype("float32") for _ in range(2)], rng.integers(0, 10, rows)


def test_numba_graph_steps_allocate_nothing():
    require("numba")
    model = graph("numba")
    X, y = batch()
    Xd, Yd, _ = model.prepare(X, y)
    peak, lasting = host_growth(lambda: model.train_step(Xd, Yd), repeats=20)
    assert peak < SLACK_BYTES, f"a step allocated {peak} bytes"
    assert lasting < SLACK_BYTES


def _stand_in():
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    return cupy_on_cpu()


def test_stand_in_graph_steps_allocate_nothing():
    X, y = batch()
    with _stand_in() as backend:
        model = graph(backend)
        Xd, Yd, _ = model.prepare(X, y)
        assert stand_in_allocations(lambda: model.train_step(Xd, Yd)) == 0


def test_graph_compile_step_replays_match_eager_steps(cupy_backend):
    X, y = batch()
    recorded, eager = graph(cupy_backend), graph(cupy_backend)
    for model in (recorded, eager):
        model.get_layer("dropout").rate = 0.0  # device-drawn masks differ between replays and eager steps
    step = recorded.compile_step(X, y)
    assert step.recorded, step.reason
    Xd, Yd, _ = eager.prepare(X, y)
    eager.train_step(Xd, Yd)  # the warm-up step
    for _ in range(4):
        loss, expected = step(), eager.train_step(Xd, Yd)
        assert abs(float(loss) - float(expected)) <= 1e-5 * abs(float(expected))
    for got, want in zip(recorded.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_graphed_fit_of_a_graph_trains_as_eager_fit(cupy_backend):
    X, y = batch(100)
    graphed, eager = graph(cupy_backend), graph(cupy_backend)
    for model in (graphed, eager):
        model.get_layer("dropout").rate = 0.0
    ours = graphed.fit(X, y, epochs=2, batch_size=32, verbose=0, cuda_graph=True)
    theirs = eager.fit(X, y, epochs=2, batch_size=32, verbose=0)
    np.testing.assert_allclose(ours.history["loss"], theirs.history["loss"], rtol=1e-5)
    for got, want in zip(graphed.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_graphs_that_cannot_be_recorded_say_why():
    from netcore.trainers.cuda_graphs import capture_blocker

    x = Input((4,))
    h = Dense(4, "tanh")(x)
    two = Model(x, [Dense(2, "softmax")(h), Dense(1)(h)], device="numpy")
    two.compile("adam", ["cross_entropy", "mse"])
    assert "several outputs" in capture_blocker(two)
    broadcast = Model(x, Dense(2, "softmax")(Add()([h, Dense(1)(x)])), device="numpy")
    broadcast.compile("adam", "cross_entropy")
    assert "broadcasts" in capture_blocker(broadcast)
