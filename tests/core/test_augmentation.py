"""Augmentation layers: exact transforms for known draws, the identity outside training, draws fixed by the seed
and the same on every backend, the statistics of the random draws, and their place in a model."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import (
    Conv2D,
    Dense,
    Flatten,
    RandomBrightness,
    RandomContrast,
    RandomErasing,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)

SHAPE = (9, 9, 2)
ALL = [
    lambda: RandomFlip("horizontal"),
    lambda: RandomTranslation(0.2, 0.3),
    lambda: RandomRotation(0.1),
    lambda: RandomZoom(0.2),
    lambda: RandomBrightness(0.2, value_range=(0, 1)),
    lambda: RandomContrast(0.3, value_range=(0, 1)),
    lambda: RandomErasing(0.7),
]


def images(n=16, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype("float32")


class Fixed:
    """A generator stand-in whose uniform draws are all ``value`` (a known transform)."""

    def __init__(self, value):
        self.value = value

    def uniform(self, low, high, n):
        return np.full(n, self.value)

    def random(self, n):
        return np.full(n, self.value)


def transformed(backend, x, kind, ranges, draw, fill_mode="constant"):
    n, height, width, _ = x.shape
    matrices = backend.random_affine(Fixed(draw), n, height, width, kind, ranges, x.dtype)
    out = backend.empty(x.shape, x.dtype)
    return backend.to_numpy(backend.affine_sample(backend.asarray(x), matrices, out, fill_mode, 0.0, "bilinear"))


def test_known_transforms_are_exact(backend):
    x = images(3)
    np.testing.assert_allclose(transformed(backend, x, "rotate", (0, 1), 0.25), np.rot90(x, 1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(transformed(backend, x, "flip", (True, False), 0.0), x[:, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(transformed(backend, x, "flip", (False, True), 0.0), x[:, ::-1], atol=1e-6)
    shifted = transformed(backend, x, "translate", ((0, 1), (0, 1)), 2 / 9)  # two pixels down and right
    np.testing.assert_allclose(shifted[:, 2:, 2:], x[:, :-2, :-2], atol=1e-6)
    assert (shifted[:, :2] == 0).all() and (shifted[:, :, :2] == 0).all()
    reflected = transformed(backend, x, "translate", ((0, 1), (0, 1)), 2 / 9, "reflect")
    np.testing.assert_allclose(reflected[:, :2, 2:], x[:, 1::-1, :-2], atol=1e-6)  # (b a | a b c ...)
    np.testing.assert_allclose(transformed(backend, x, "zoom", ((-1, 1), None), 0.0), x, atol=1e-6)
    zoomed_out = transformed(backend, x, "zoom", ((-1, 1), None), 1.0)  # twice the field of view
    np.testing.assert_allclose(zoomed_out[:, 2:7, 2:7], x[:, 0:9:2, 0:9:2], atol=1e-6)


@pytest.mark.parametrize("make", ALL)
def test_identity_outside_training_and_seeded_in_it(backend, make):
    x = images()
    outputs = []
    for _ in range(2):
        model = netcore.Sequential([make()], input_shape=SHAPE, device=backend.name, seed=3)
        np.testing.assert_array_equal(model.predict(x), x)
        outputs.append(backend.to_numpy(model.train()(x)).copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])  # the seed fixes the draws
    assert not np.array_equal(outputs[0], x)


@pytest.mark.parametrize("make", ALL)
def test_every_backend_draws_and_applies_the_same_augmentation(other_backend, make):
    x = images()
    reference = netcore.Sequential([make()], input_shape=SHAPE, device="numpy", seed=5).train()(x)
    model = netcore.Sequential([make()], input_shape=SHAPE, device=other_backend.name, seed=5)
    np.testing.assert_allclose(other_backend.to_numpy(model.train()(x)), reference, rtol=1e-5, atol=1e-6)


def test_draws_follow_their_ranges():
    backend = netcore.Sequential([Dense(1)], input_dim=1, device="numpy").backend
    rng = np.random.default_rng(0)
    flips = backend.random_affine(rng, 4000, 8, 8, "flip", (True, False), "float64")
    assert abs((flips[:, 0] < 0).mean() - 0.5) < 0.03 and (flips[:, 4] == 1).all()
    turns = backend.random_affine(rng, 2000, 8, 8, "rotate", (-0.1, 0.1), "float64")
    angles = np.arctan2(turns[:, 3], turns[:, 0]) / (2 * np.pi)
    assert angles.min() >= -0.1 and angles.max() <= 0.1 and abs(angles.mean()) < 0.01
    zooms = backend.random_affine(rng, 2000, 8, 8, "zoom", ((-0.2, 0.3), (0.0, 0.1)), "float64")
    assert (
        zooms[:, 4].min() >= 0.8 and zooms[:, 4].max() <= 1.3 and 1.0 <= zooms[:, 0].min() <= zooms[:, 0].max() <= 1.1
    )
    boxes = backend.random_boxes(rng, 4000, 20, 30, 0.4, (0.02, 0.2), (0.5, 2.0))
    chosen = boxes[:, 2] > 0
    area = boxes[chosen, 2] * boxes[chosen, 3] / (20 * 30)
    assert abs(chosen.mean() - 0.4) < 0.03 and area.min() > 0.01 and area.max() < 0.25
    assert (boxes[:, 0] + boxes[:, 2] <= 20).all() and (boxes[:, 1] + boxes[:, 3] <= 30).all()


def test_brightness_and_contrast_keep_their_promises():
    x = images(64) * 0.5 + 0.25  # in [0.25, 0.75]: no clipping for small factors
    bright = netcore.Sequential([RandomBrightness(0.1, value_range=(0, 1))], input_shape=SHAPE, device="numpy", seed=0)
    delta = (bright.train()(x) - x).reshape(64, -1)
    assert np.allclose(delta, delta[:, :1]) and np.abs(delta).max() <= 0.1 + 1e-6
    clipped = netcore.Sequential([RandomBrightness((0.9, 1.0), value_range=(0, 1))], input_shape=SHAPE, device="numpy")
    assert (clipped.train()(x) == 1).all()
    contrast = netcore.Sequential([RandomContrast(0.2, value_range=(0, 1))], input_shape=SHAPE, device="numpy", seed=0)
    out = contrast.train()(x)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-6)
    ratio = out.std(axis=(1, 2)) / x.std(axis=(1, 2))
    assert ratio.min() >= 0.8 - 1e-5 and ratio.max() <= 1.2 + 1e-5 and ratio.std() > 0.05


def test_augmentation_trains_and_must_precede_weights():
    layers = [RandomFlip("horizontal"), RandomRotation(0.05), Conv2D(4, 3), Flatten(), Dense(2, "softmax")]
    model = netcore.Sequential(layers, input_shape=SHAPE, device="numpy", seed=0)
    model.compile("adam", "cross_entropy")
    history = model.fit(images(32), np.arange(32) % 2, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with pytest.raises(netcore.ConfigurationError, match="random_zoom .* before every layer with weights"):
        netcore.Sequential([Conv2D(2, 3), RandomZoom(0.1)], input_shape=SHAPE, device="numpy")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RandomFlip("diagonal"), "mode must be one of"),
        (lambda: RandomRotation((0.2, -0.2)), r"lower, upper"),
        (lambda: RandomTranslation(1.5, 0.1), r"within \[-1.0, 1.0\]"),
        (lambda: RandomZoom(0.1, fill_mode="mirror"), "fill_mode must be one of"),
        (lambda: RandomContrast(1.5), "RandomContrast factor"),
        (lambda: RandomBrightness(0.1, value_range=(1, 0)), "value_range"),
        (lambda: RandomErasing(1.2), r"probability must be in \[0, 1\]"),
        (lambda: RandomErasing(0.5, scale=(0.5, 0.1)), "scale"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(netcore.ConfigurationError, match=match):
        make()
