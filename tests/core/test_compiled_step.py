"""compile_step: a recorded CUDA graph on cupy (checked against eager steps), an eager fallback with a reason
everywhere else, and allocation-free steps on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Activation, BatchNorm, Dense, Dropout, GaussianNoise
from tests.conftest import require

RECORDABLE = {
    "adam": lambda: netcore.optimizers.Adam(lr=1e-3),
    "adamw": lambda: netcore.optimizers.AdamW(lr=1e-3, weight_decay=0.01),
    "sgd": lambda: netcore.optimizers.SGD(lr=0.05),
    "sgd-nesterov": lambda: netcore.optimizers.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: netcore.optimizers.RMSprop(lr=1e-3, momentum=0.5, centered=True),
    "adadelta": lambda: netcore.optimizers.Adadelta(lr=1.0),
}


def w2_like(device, seed=0, optimizer="adam", dropout=0.0, batchnorm=False):
    layers = [Dense(64, "relu"), Dense(32, "relu"), Dense(10, "softmax")]
    if batchnorm:
        layers[:1] = [Dense(64, use_bias=False), BatchNorm(), Activation("gelu")]
    if dropout:
        layers.insert(1, Dropout(dropout))
    model = netcore.Sequential(layers, input_dim=48, device=device, seed=seed)
    model.compile(RECORDABLE[optimizer](), "cross_entropy")
    return model


def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, 48)).astype("float32"), rng.integers(0, 10, 32)


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_cpu_backends_fall_back_to_eager_steps_with_a_reason(device, caplog):
    require(device)
    X, y = batch()
    compiled, eager = w2_like(device), w2_like(device)
    with caplog.at_level("INFO", logger="netcore"):
        step = compiled.compile_step(X, y)
    assert not step.recorded and "no step capture" in step.reason and "runs eagerly" in caplog.text
    Xd, Yd, _ = eager.prepare(X, y)
    for _ in range(4):
        step()
        eager.train_step(Xd, Yd)
    assert compiled.optimizer.step_count == eager.optimizer.step_count == 4
    for a, b in zip(compiled.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("layers", "why"),
    [
        ([Dense(8, "relu", kernel_regularizer=netcore.regularizers.L2(0.01)), Dense(2, "softmax")], "penalties"),
        ([Dense(8, "softmax"), Dense(2, "softmax")], "softmax activation is not recordable"),
        ([Dense(8), Activation("softmax"), Dense(2, "softmax")], "softmax activation is not recordable"),
    ],
)
def test_unrecordable_models_say_why(layers, why):
    from netcore.trainers.cuda_graphs import capture_blocker

    model = netcore.Sequential(layers, input_dim=3, device="numpy")
    model.compile("adam", "cross_entropy")
    assert why in capture_blocker(model)
    step = model.compile_step(np.ones((4, 3)), np.array([0, 1, 0, 1]))
    assert not step.recorded


@pytest.mark.parametrize(("optimizer", "batchnorm"), [(name, False) for name in RECORDABLE] + [("adam", True)], ids=str)
def test_cuda_graph_replays_match_eager_steps(cupy_backend, optimizer, batchnorm):
    X, y = batch()
    graph = w2_like(cupy_backend, optimizer=optimizer, batchnorm=batchnorm)
    eager = w2_like(cupy_backend, optimizer=optimizer, batchnorm=batchnorm)
    step = graph.compile_step(X, y)
    assert step.recorded, step.reason
    Xd, Yd, _ = eager.prepare(X, y)
    eager.train_step(Xd, Yd)  # compile_step's warm-up step
    for _ in range(5):
        loss = step()
        expected = eager.train_step(Xd, Yd)  # another model's step leaves this model's loss alone
        assert abs(float(loss) - float(expected)) <= 1e-5 * abs(float(expected))
    assert graph.optimizer.step_count == eager.optimizer.step_count == 6
    for a, b in zip(graph.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    graph.optimizer.lr = 5e-4
    step()
    assert not step.recorded and "learning rate" in step.reason


@pytest.mark.parametrize(("dropout", "batchnorm"), [(0.0, False), (0.2, False), (0.0, True)], ids=str)
def test_cpu_stand_in_steps_allocate_nothing(dropout, batchnorm):
    from tests.backends.cupy_on_cpu import COMPILER, allocations, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    X, y = batch()
    with cupy_on_cpu() as backend:
        model = w2_like(backend, dropout=dropout, batchnorm=batchnorm)
        Xd, Yd, _ = model.prepare(X, y)
        for _ in range(3):
            model.train_step(Xd, Yd)
        before = allocations()
        for _ in range(10):
            model.train_step(Xd, Yd)
        assert allocations() == before


@pytest.mark.gpu
@pytest.mark.parametrize(("dropout", "batchnorm"), [(0.0, False), (0.2, False), (0.0, True)], ids=str)
def test_gpu_training_steps_allocate_nothing(dropout, batchnorm):
    require("cupy")
    import cupy

    X, y = batch()
    model = w2_like("cupy", dropout=dropout, batchnorm=batchnorm)
    Xd, Yd, _ = model.prepare(X, y)
    for _ in range(3):
        model.train_step(Xd, Yd)
    pool = cupy.get_default_memory_pool()
    calls = []

    def counting_malloc(size):
        calls.append(size)
        return pool.malloc(size)

    cupy.cuda.set_allocator(counting_malloc)
    try:
        for _ in range(10):
            model.train_step(Xd, Yd)
        cupy.cuda.Device().synchronize()
    finally:
        cupy.cuda.set_allocator(pool.malloc)
    assert calls == []


def test_a_models_device_loss_survives_another_models_step(cupy_backend):
    X, y = batch()
    first, second = w2_like(cupy_backend, seed=1), w2_like(cupy_backend, seed=2)
    Xd, Yd, _ = first.prepare(X, y)
    loss = first.train_step(Xd, Yd)
    value = float(loss)
    second.train_step(Xd, Yd)
    assert float(loss) == value


def test_dropout_and_noise_are_recorded_and_draw_anew_on_every_replay(cupy_backend):
    X, y = batch()
    model = netcore.Sequential(
        [GaussianNoise(0.1), Dense(64, "relu"), Dropout(0.3), Dense(10, "softmax")], input_dim=48, device=cupy_backend
    )
    model.compile("adam", "cross_entropy")
    step = model.compile_step(X, y)
    assert step.recorded, step.reason
    dropout, noise = model.layers[2], model.layers[0]
    masks, noisy = [], []
    for _ in range(3):
        step()
        masks.append(cupy_backend.to_numpy(dropout._mask).copy())
        noisy.append(cupy_backend.to_numpy(noise.buffer("y", (32, 48), model.dtype)).copy())
    for draws in (masks, noisy):
        assert all(not np.array_equal(a, b) for a, b in zip(draws, draws[1:], strict=False))
    kept = np.mean([m != 0 for m in masks])
    assert abs(kept - 0.7) < 0.05
    np.testing.assert_allclose(np.std(noisy[0] - X), 0.1, rtol=0.1)
