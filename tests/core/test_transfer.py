"""Freezing and transfer learning: ``trainable=False`` as in Keras, and layers that move into a new model with their
weights (``Sequential(base.layers[:-1] + [head], ...)``), shared between the models afterwards."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPooling2D

SHAPE = (6, 6, 1)


def images(n=48, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)).astype("float32"), rng.integers(0, classes, n)


def trained_base(device="numpy"):
    base = netcore.Sequential(
        [
            Conv2D(4, 3, padding="same", use_bias=False),
            BatchNorm(),
            netcore.layers.Activation("relu"),
            MaxPooling2D(2),
            Flatten(),
            Dense(8, "relu"),
            Dense(4, "softmax"),
        ],
        input_shape=SHAPE,
        device=device,
        seed=0,
    )
    base.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    base.fit(*images(), epochs=2, batch_size=16, verbose=0)
    return base


def freeze(layers):
    for layer in layers:
        layer.trainable = False


def test_a_new_model_keeps_the_weights_of_the_layers_it_is_built_from():
    base = trained_base()
    before = base.get_weights()
    model = netcore.Sequential(base.layers[:-1] + [Dense(3, "softmax")], input_shape=SHAPE, device="numpy", seed=1)
    kept = model.get_weights()[: len(before) - 2]
    for got, want in zip(kept, before[:-2], strict=True):
        np.testing.assert_array_equal(got, want)


def test_frozen_layers_are_not_updated_and_the_head_learns():
    base = trained_base()
    body = base.layers[:-1]
    model = netcore.Sequential(body + [Dense(3, "softmax")], input_shape=SHAPE, device="numpy", seed=1)
    freeze(body)
    model.compile(netcore.optimizers.AdamW(lr=1e-2, weight_decay=0.1), "cross_entropy")
    before = model.get_weights()
    model.fit(*images(classes=3, seed=2), epochs=3, batch_size=16, verbose=0)
    after = model.get_weights()
    for got, want in zip(after[:-2], before[:-2], strict=True):  # weights and running statistics, bit for bit
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(after[-2], before[-2]) and not np.array_equal(after[-1], before[-1])
    text = model.summary(print_fn=None)
    frozen = sum(w.size for w in before[:-2])
    assert f"non-trainable parameters: {frozen:,}" in text and "trainable parameters: 27" in text


def test_fine_tuning_after_unfreezing_and_compiling_again():
    base = trained_base()
    body = base.layers[:-1]
    model = netcore.Sequential(body + [Dense(3, "softmax")], input_shape=SHAPE, device="numpy", seed=1)
    freeze(body)
    model.compile("adam", "cross_entropy")
    X, y = images(classes=3, seed=2)
    model.fit(X, y, epochs=1, verbose=0)
    for layer in body:
        layer.trainable = True
    with pytest.raises(netcore.ConfigurationError, match="call compile\\(\\) again"):
        model.fit(X, y, epochs=1, verbose=0)
    model.compile(netcore.optimizers.Adam(lr=1e-4), "cross_entropy")
    before = model.get_weights()
    model.fit(X, y, epochs=1, verbose=0)
    assert not np.array_equal(model.get_weights()[0], before[0])


def test_layers_share_their_weights_between_the_models():
    base = trained_base()
    model = netcore.Sequential(base.layers[:-1] + [Dense(3, "softmax")], input_shape=SHAPE, device="numpy", seed=1)
    model.compile(netcore.optimizers.SGD(lr=0.1), "cross_entropy")
    model.fit(*images(classes=3, seed=2), epochs=1, verbose=0)
    tuned = model.get_weights()[:-2]
    for got, want in zip(base.get_weights()[:-2], tuned, strict=True):  # the base sees the fine-tuned weights
        np.testing.assert_array_equal(got, want)
    X, _ = images(8)
    assert base.predict(X).shape == (8, 4)  # and still runs with its own head


def test_layers_move_across_devices_and_dtypes():
    base = trained_base()
    weights = base.get_weights()
    model = netcore.Sequential(
        base.layers[:-1] + [Dense(3, "softmax")], input_shape=SHAPE, device="numba", dtype="float64", seed=1
    )
    for got, want in zip(model.get_weights()[:-2], weights[:-2], strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want.astype(np.float64))


def test_an_incompatible_input_shape_names_the_layer_and_leaves_the_base_working():
    base = trained_base()
    X, _ = images(8)
    expected = base.predict(X)
    with pytest.raises(netcore.ShapeError, match="dense carries W of shape \\(36, 8\\)"):
        netcore.Sequential(base.layers[:-1] + [Dense(3)], input_shape=(8, 8, 1), device="numpy")
    np.testing.assert_array_equal(base.predict(X), expected)


def test_a_frozen_model_checkpoint_resumes_exactly(tmp_path):
    def model():
        m = netcore.Sequential(
            [Conv2D(3, 3, trainable=False), BatchNorm(trainable=False), Flatten(), Dense(4, "softmax")],
            input_shape=SHAPE,
            device="numpy",
            seed=3,
        )
        return m.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")

    X, y = images()
    straight = model()
    straight.fit(X, y, epochs=4, batch_size=16, verbose=0)
    halves = model()
    halves.fit(X, y, epochs=2, batch_size=16, verbose=0)
    halves.save(tmp_path / "m.ncz")
    resumed = netcore.load(tmp_path / "m.ncz")
    assert [layer.trainable for layer in resumed.layers] == [False, False, True, True]
    resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for got, want in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
