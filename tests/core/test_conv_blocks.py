"""A convolution whose patches outgrow the backend's ``patch_block_bytes`` runs a block of images at a time: the
blocks are even, and a blocked model trains exactly as the same model convolving the whole batch at once."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Conv2D, Dense, Flatten, MaxPooling2D

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
    assert len(conv._blocks(7, np.dtype("float64"))) == 7
    blocked = train(blocked_model)
    np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-12)
    for got, want in zip(blocked[1], whole[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(blocked[2], whole[2], rtol=1e-10, atol=1e-12)


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
    monkeypatch.setattr(numpy_backend, "patch_block_bytes", per_image * 3)
    blocks = conv._blocks(10, np.dtype("float64"))
    assert [(b.start, b.stop) for b in blocks] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    monkeypatch.setattr(numpy_backend, "patch_block_bytes", per_image * 4)
    assert [(b.start, b.stop) for b in conv._blocks(10, np.dtype("float64"))] == [(0, 3), (3, 6), (6, 10)]
    monkeypatch.setattr(numpy_backend, "patch_block_bytes", None)
    assert conv._blocks(10, np.dtype("float64")) == [slice(0, 10)]
