"""A convolutional training step allocates nothing after the first batch (numba: tracemalloc; the CuPy backend:
the stand-in's allocation counter), and records into CUDA graphs that train exactly as eager steps do."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import netcore
from netcore.layers import (
    Activation,
    AveragePooling2D,
    BatchNorm,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
    MaxPooling2D,
    SpatialDropout2D,
)
from tests.conftest import require
from tests.core.memory import host_growth, stand_in_allocations

SHAPE = (12, 12, 3)


def cnn(device, seed=0):
    model = netcore.Sequential(
        [
            Conv2D(8, 3, padding="same", use_bias=False),
            BatchNorm(),
            Activation("relu"),
            MaxPooling2D(2),
            Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            SpatialDropout2D(0.2),
            AveragePooling2D(2, padding="same"),
            Conv2D(16, 1, activation="relu"),
            GlobalAveragePooling2D(),
            Dense(10, "softmax"),
        ],
        input_shape=SHAPE,
        device=device,
        seed=seed,
    )
    model.compile(netcore.optimizers.Adam(lr=1e-3), "cross_entropy")
    return model


def data(n=80):
    rng = np.random.default_rng(0)
    return rng.random((n, *SHAPE)).astype("float32"), rng.integers(0, 10, n)


def test_numba_image_steps_allocate_nothing():
    require("numba")
    model = cnn("numba")
    X, Y, _ = model.prepare(*data(32))
    peak, lasting = host_growth(lambda: model.train_step(X, Y))
    # Python's small objects (array views, the blocks' closures) only: a peak below the smallest work buffer (10
    # KiB) means no buffer was allocated.
    assert peak < 10 * 1024, f"a step allocated {peak} bytes"
    assert lasting < 4096


def test_cpu_stand_in_image_steps_allocate_nothing():
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    with cupy_on_cpu() as backend:
        model = cnn(backend)
        X, Y, _ = model.prepare(*data(32))
        assert stand_in_allocations(lambda: model.train_step(X, Y)) == 0


def test_graphed_image_fit_trains_as_eager_fit_does(cupy_backend, caplog):
    X, y = data()
    graphed, eager = cnn(cupy_backend), cnn(cupy_backend)
    with caplog.at_level(logging.INFO, logger="netcore"):
        history_graphed = graphed.fit(X, y, epochs=2, batch_size=32, verbose=0, cuda_graph=True)
    assert "eagerly" not in caplog.text
    # Spatial dropout draws its masks on the device from seeds advanced at each replay: compare with dropout off.
    graphed, eager = cnn(cupy_backend, seed=1), cnn(cupy_backend, seed=1)
    for model in (graphed, eager):
        model.layers[5].rate = 0.0
    history_graphed = graphed.fit(X, y, epochs=2, batch_size=32, verbose=0, cuda_graph=True)
    history_eager = eager.fit(X, y, epochs=2, batch_size=32, verbose=0)
    np.testing.assert_allclose(history_graphed.history["loss"], history_eager.history["loss"], rtol=1e-5)
    for a, b in zip(graphed.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_numba_and_cupy_train_an_image_model_as_numpy_does(other_backend):
    X, y = data(40)
    reference, model = cnn("numpy", seed=2), cnn(other_backend, seed=2)
    for m in (reference, model):
        m.layers[5].rate = 0.0  # device-drawn masks differ from the host's on cupy
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
