"""A convolution whose patches outgrow the backend's ``patch_block_bytes`` runs a block of images at a time: the
blocks are even, and a blocked model trains exactly as the same model convolving the whole batch at once."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Conv2D, Dense, Flatten, MaxPooling2D
from netcore.layers.base import batch_blocks
from netcore.layers.pooling import _Pooling2D
from tests.conftest import require

SHAPE = (9, 8, 3)

GEOMETRIES = {
    "same": lambda: Conv2D(4, 3, padding="same", activation="relu"),
    "valid stride 2": lambda: Conv2D(4, (3, 2), strides=2, activation="tanh"),
    "dilated": lambda: Conv2D(3, 3, dilation_rate=2, padding="same", activation="elu"),
    "frozen": lambda: Conv2D(4, 3, padding="same", activation="relu", trainable=False),
}


def model(backend, first, dtype="float64"):
    layers = [first(), Conv2D(5, 3, padding="same", activation="relu"), MaxPooling2D(2), Flatten(), Dense(3, "softmax")]
    net = netcore.Sequential(layers, input_shape=SHAPE, device=backend, dtype=dtype, seed=2)
    net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    return net


def data(n=7):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, *SHAPE)), rng.integers(0, 3, n)


def train(net, steps=4):
    X, y = data()
    losses = [net.train_on_batch(X, y) for _ in range(steps)]
    return losses, net.get_weights(), net.predict(X, verbose=0)


def assert_trained_alike(got, want, atol=1e-12) -> None:
    """Two results of :func:`train` (losses, weights, predictions) equal up to the order of sums."""
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    for mine, reference in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-10, atol=atol)


def one_image_budget(backend, net) -> int:
    """A budget that fits the patches of about one image of the first layer: seven images make several blocks."""
    first = net.layers[1] if type(net.layers[0]).__name__ == "InputLayer" else net.layers[0]
    return first.patch_size * first.window.out_h * first.window.out_w * 8 + 1


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_blocked_convolutions_train_as_whole_batches(backend, geometry, monkeypatch):
    whole = train(model(backend, GEOMETRIES[geometry]))
    blocked_model = model(backend, GEOMETRIES[geometry])
    monkeypatch.setattr(backend, "patch_block_bytes", one_image_budget(backend, blocked_model))
    conv = blocked_model.layers[0]
    assert conv.block_count(7, np.dtype("float64")) == 7
    blocked = train(blocked_model)
    assert_trained_alike(blocked, whole)


def test_blocked_gradients_pass_the_central_difference_check(backend, monkeypatch):
    net = model(backend, GEOMETRIES["valid stride 2"])
    monkeypatch.setattr(backend, "patch_block_bytes", one_image_budget(backend, net) * 2)
    X, y = data(5)
    report = netcore.check_gradients(net, X, y)
    report.raise_if_above(1e-6)


def test_blocks_are_even_and_cover_the_batch(numpy_backend, monkeypatch):
    net = model(numpy_backend, GEOMETRIES["same"])
    conv = net.layers[0]
    per_image = conv.patch_size * conv.window.out_h * conv.window.out_w * 8
    monkeypatch.setattr(numpy_backend, "block_threads", 1)
    monkeypatch.setattr(numpy_backend, "patch_block_bytes", per_image * 3)
    f64 = np.dtype("float64")

    def blocks(n):
        return [(b.start, b.stop) for b in batch_blocks(n, conv.block_count(n, f64))]

    assert blocks(10) == [(0, 2), (2, 5), (5, 7), (7, 10)] and not conv._keeps_patches(10, f64)
    monkeypatch.setattr(numpy_backend, "patch_block_bytes", per_image * 4)
    assert blocks(10) == [(0, 3), (3, 6), (6, 10)]
    monkeypatch.setattr(numpy_backend, "patch_block_bytes", None)
    assert blocks(10) == [(0, 10)] and conv._keeps_patches(10, f64)
    monkeypatch.setattr(numpy_backend, "block_threads", 3)  # at least a block per thread; small ones keep patches
    assert blocks(10) == [(0, 3), (3, 6), (6, 10)] and conv._keeps_patches(10, f64)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_blocks_on_several_threads_train_as_on_one(name, threads, monkeypatch):
    """The CPU backends' block threads: the same losses, weights and predictions as one thread runs (the
    gradients of several blocks are summed in block order, whichever thread finished first)."""
    backend = require(name)
    monkeypatch.setattr(backend, "block_threads", 1)
    serial = train(model(backend, GEOMETRIES["same"]))
    monkeypatch.setattr(backend, "block_threads", threads)
    monkeypatch.setattr(_Pooling2D, "min_split_size", 1)  # the pooling of a few small images splits too
    parallel_model = model(backend, GEOMETRIES["same"])
    assert parallel_model.layers[0].block_count(7, np.dtype("float64")) == threads
    parallel = train(parallel_model)
    assert_trained_alike(parallel, serial)


def test_calls_of_a_model_with_blocks_keep_blas_on_the_calling_thread(monkeypatch):
    """While a model whose layers run blocks on threads is called, BLAS has one thread (its own pool would spin
    beside the block threads); afterwards it has what it had."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    backend = require("numba")
    monkeypatch.setattr(backend, "block_threads", 2)

    def blas():
        return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]

    class Watch(netcore.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(blas())

    before, seen = blas(), []
    model(backend, GEOMETRIES["same"], dtype="float32").fit(*data(), epochs=2, verbose=0, callbacks=[Watch()])
    assert seen and all(counts == [1] * len(before) for counts in seen)
    assert blas() == before


def test_train_step_of_a_model_with_blocks_keeps_blas_on_the_calling_thread(monkeypatch):
    """A hand-written loop of train_step gets what fit gets: one BLAS thread during each step of a model whose layers
    run blocks on threads, none of that for a model without them, and BLAS as it was between steps."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    backend = require("numba")
    monkeypatch.setattr(backend, "block_threads", 2)

    def blas():
        return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]

    X, y = data()
    before = blas()
    for net, blocked in ((model(backend, GEOMETRIES["same"], dtype="float32"), True), (dense_model(backend), False)):
        Xd, yd, _ = net.prepare(X if blocked else X.reshape(len(X), -1), y)
        seen: list = []
        step = net.loss_and_gradients
        monkeypatch.setattr(net, "loss_and_gradients", lambda *a, s=seen, f=step: s.append(blas()) or f(*a))
        net.train_step(Xd, yd)
        assert seen == [[1] * len(before) if blocked else before]
        assert blas() == before


def dense_model(backend):
    net = netcore.Sequential([Dense(4, "relu"), Dense(3, "softmax")], input_dim=int(np.prod(SHAPE)), device=backend)
    net.compile("adam", "cross_entropy")
    return net


def test_a_failing_block_raises_in_the_caller_and_the_threads_serve_on():
    from backends.workers import Workers

    workers, done = Workers(2), []

    def work(item):
        if item == 3:
            raise ValueError("block 3")
        done.append(item)

    with pytest.raises(ValueError, match="block 3"):
        workers.map(work, list(range(6)))
    assert {0, 2, 4} <= set(done)  # the calling thread's share ran to its end
    done.clear()
    workers.map(done.append, list(range(6)))
    assert sorted(done) == list(range(6))


def test_pooling_splits_only_a_large_batch(monkeypatch):
    backend = require("numba")
    monkeypatch.setattr(backend, "block_threads", 2)
    pool = MaxPooling2D(2)
    netcore.Sequential([pool, Flatten(), Dense(2)], input_shape=(8, 8, 4), device=backend, seed=0)
    counts = []
    monkeypatch.setattr(backend, "map_blocks", lambda function, count: counts.append(count))
    pool.forward(np.zeros((4, 8, 8, 4), "float32"), True)
    monkeypatch.setattr(_Pooling2D, "min_split_size", 4 * 8 * 8 * 4)
    pool.forward(np.zeros((4, 8, 8, 4), "float32"), True)
    assert counts == [1, 2]
