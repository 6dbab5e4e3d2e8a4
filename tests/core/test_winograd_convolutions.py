"""3x3 convolutions at stride 1 by Winograd's F(2x2, 3x3) (on backends with compiled transforms) train as the
same network convolving by patches, which backend chooses them, and they keep their buffers between steps."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tests.conftest import require
from tests.core.memory import host_growth
from tests.core.test_conv_blocks import assert_trained_alike


def network(device, dtype="float64", first=lambda: Conv2D(16, 3, padding="same", activation="relu")):
    layers = [
        first(),
        MaxPooling2D(2),
        Conv2D(16, 3, padding="same", activation="relu"),
        Conv2D(18, 3, activation="tanh"),
        Flatten(),
        Dense(3, "softmax"),
    ]
    net = netcore.Sequential(layers, input_shape=(11, 10, 16), device=device, dtype=dtype, seed=3)
    # SGD in float32: Adam's steps on weights with gradients near 0 follow the sign of their rounding.
    optimizer = netcore.optimizers.Adam(lr=1e-2) if dtype == "float64" else netcore.optimizers.SGD(lr=0.05)
    net.compile(optimizer, "cross_entropy")
    return net


def train(net, steps=3):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((9, 11, 10, 16)), rng.integers(0, 3, 9)
    X = X.astype(net.dtype)
    losses = [net.train_on_batch(X, y) for _ in range(steps)]
    return losses, net.get_weights(), net.predict(X, verbose=0)


def convolutions(net):
    return [layer for layer in net.layers if isinstance(layer, Conv2D)]


def by_patches(monkeypatch, backend):
    monkeypatch.setattr(type(backend), "winograd_from_channels", None)


def test_numba_takes_winograd_for_3x3_convolutions_with_enough_channels_for_their_filters():
    backend = require("numba")
    net = network("numba", first=lambda: Conv2D(16, 3, dilation_rate=2, padding="same", activation="relu"))
    assert [layer.by_winograd for layer in convolutions(net)] == [False, True, True]
    assert backend.winograd_from_channels == 8
    assert require("numpy").winograd_from_channels is None
    # (input channels, filters) -> the form: at most channels ** 2 / 4 filters, from 8 channels on.
    cases = {
        (16, 64): True,
        (16, 65): False,
        (8, 16): True,
        (8, 17): False,
        (32, 4): True,
        (7, 4): False,
        (3, 32): False,
    }
    for (channels, filters), winograd in cases.items():
        layers = [Conv2D(filters, 3, padding="same"), Flatten(), Dense(2)]
        model = netcore.Sequential(layers, input_shape=(6, 6, channels), device="numba")
        assert convolutions(model)[0].by_winograd == winograd, (channels, filters)


def test_the_patches_everywhere_when_a_backend_is_told_so(monkeypatch):
    """The README's switch: ``model.backend.winograd_from_channels = None`` between steps."""
    net = network("numba")
    assert all(layer.by_winograd for layer in convolutions(net))
    monkeypatch.setattr(net.backend, "winograd_from_channels", None)
    assert not any(layer.by_winograd for layer in convolutions(net))
    losses, _, predictions = train(net)
    assert np.isfinite(losses).all() and np.isfinite(predictions).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_winograd_trains_as_the_patches(monkeypatch, dtype):
    backend = require("numba")
    got = train(network("numba", dtype))
    by_patches(monkeypatch, backend)
    want = train(network("numba", dtype))
    if dtype == "float64":
        assert_trained_alike(got, want, atol=1e-12)
        return
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for mine, reference in zip(got[1] + [got[2]], want[1] + [want[2]], strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_transforms_equal_the_base_expressions_to_the_bit(dtype):
    """The base class's array expressions are the compiled kernels' formula, in the same order: the same bits."""
    from tests.backends.kernel_cases import CASES

    results = [CASES["winograd[same]"](require(name), np.random.default_rng(5), 3, 16, dtype, True) for name in
               ("numpy", "numba")]  # fmt: skip
    for mine, reference in zip(*results, strict=True):
        np.testing.assert_array_equal(mine, reference)


@pytest.mark.parametrize("kept_tile_bytes", [None, 1000])
def test_blocked_winograd_trains_as_one_block(monkeypatch, kept_tile_bytes):
    """Blocks that keep their input tiles for the backward pass, and blocks that rebuild them there."""
    backend = require("numba")
    whole = train(network("numba"))
    monkeypatch.setattr(type(backend), "patch_block_bytes", 20_000)
    monkeypatch.setattr(type(backend), "kept_tile_bytes", kept_tile_bytes)
    blocked = network("numba")
    layer = convolutions(blocked)[1]
    assert layer.block_count(9, np.dtype("float64")) > 2
    assert layer._keeps_patches(9, np.dtype("float64")) == (kept_tile_bytes is None)
    assert_trained_alike(train(blocked), whole, atol=1e-12)


def test_winograd_steps_allocate_nothing():
    require("numba")
    net = network("numba", "float32")
    rng = np.random.default_rng(6)
    X, Y, _ = net.prepare(rng.standard_normal((16, 11, 10, 16)).astype("float32"), rng.integers(0, 3, 16))
    peak, lasting = host_growth(lambda: net.train_step(X, Y))
    # Python's small objects only (array views, the blocks' closures, about 10 KiB at their peak here): the smallest
    # array a step could allocate, a kernel in the Winograd domain (16 x 16 x 16 float32), is 16 KiB.
    assert peak < 16 * 1024, f"a step allocated {peak} bytes"
    assert lasting < 4096


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_predicting_in_blocks_keeps_one_work_buffer_per_thread(monkeypatch, device):
    """Only training keeps each block's patches or tiles for a backward pass; a prediction reuses a thread's."""
    backend = require(device)
    monkeypatch.setattr(type(backend), "patch_block_bytes", 20_000)
    net = network(device, "float32")
    layer = convolutions(net)[1]
    assert layer.block_count(9, np.dtype("float32")) > backend.block_threads
    net.predict(np.ones((9, 11, 10, 16), "float32"), verbose=0)
    slots = {key for key, _ in layer._buffers if key.startswith(("tiles", "cols"))}
    assert slots == {f"{'tiles' if layer.by_winograd else 'cols'} {lane}" for lane in range(backend.block_threads)}
