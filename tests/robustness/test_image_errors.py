"""Bad input to image models: wrong rank, size or channel count, windows larger than their input, non-positive
layer arguments. Each raises a clear NetcoreError naming the layer and the shapes, and leaves the model unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import (
    AveragePooling2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalMaxPooling2D,
    MaxPooling2D,
    Reshape,
    SpatialDropout2D,
)
from tests.robustness.fingerprint import fingerprint

SHAPE = (8, 8, 1)


@pytest.fixture(params=["numpy", "numba"])
def model(request):
    m = netcore.Sequential(
        [
            Conv2D(4, 3, padding="same", activation="relu", name="features"),
            MaxPooling2D(2),
            Flatten(),
            Dense(3, "softmax"),
        ],
        input_shape=SHAPE,
        device=request.param,
        seed=0,
    )
    m.compile("adam", "cross_entropy")
    rng = np.random.default_rng(0)
    m.fit(rng.random((12, *SHAPE)), rng.integers(0, 3, 12), epochs=1, batch_size=4, verbose=0)
    return m


def refused(model, call, error, match):
    before = fingerprint(model)
    with pytest.raises(error, match=match):
        call()
    assert fingerprint(model) == before


def test_flattened_images_name_the_first_layer_both_shapes_and_the_reshape(model):
    flat = np.ones((5, 64))
    message = r"samples of shape \(64,\).*first layer \(features\) expects samples of shape \(8, 8, 1\).*reshape"
    refused(model, lambda: model.fit(flat, np.zeros(5, int), verbose=0), netcore.ShapeError, message)
    refused(model, lambda: model.predict(flat), netcore.ShapeError, r"X\.reshape\(-1, 8, 8, 1\)")


def test_wrong_channel_count_and_size(model):
    refused(model, lambda: model.predict(np.ones((2, 8, 8, 3))), netcore.ShapeError, "3 channels instead of 1")
    refused(model, lambda: model.predict(np.ones((2, 9, 8, 1))), netcore.ShapeError, r"\(9, 8, 1\)")
    refused(model, lambda: model.predict(np.ones((8, 8, 1))), netcore.ShapeError, r"a single sample is X\[None\]")


def test_an_unbuilt_image_model_refuses_tables_naming_the_layer():
    m = netcore.Sequential([Conv2D(2, 3, name="first"), Flatten(), Dense(2)], device="numpy")
    m.compile("sgd", "mse")
    with pytest.raises(netcore.ShapeError, match=r"first \(Conv2D\) takes images .* got input shape \(5,\)"):
        m.fit(np.ones((4, 5)), np.ones((4, 2)), verbose=0)
    assert not m.built


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([Conv2D(2, 5, name="big")], r"big: its 5x5 window .* larger than its 4x4 input"),
        ([Conv2D(2, 3, dilation_rate=2, name="wide")], r"wide: its 5x5 window \(kernel 3x3, dilation 2x2\)"),
        ([MaxPooling2D(5, name="pool")], r"pool: its 5x5 window"),
        ([Conv2D(2, 3), AveragePooling2D((1, 3), name="late")], r"late: its 1x3 window .* 2x2 input"),
    ],
)
def test_windows_larger_than_their_input_are_refused_at_build(layers, match):
    with pytest.raises(netcore.ConfigurationError, match=match):
        netcore.Sequential(layers, input_shape=(4, 4, 1), device="numpy")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Conv2D(0, 3), "filters must be a positive integer"),
        (lambda: Conv2D(4, 0), "kernel_size must be a positive integer"),
        (lambda: Conv2D(4, (3, -1)), "kernel_size must be a positive integer"),
        (lambda: Conv2D(4, (3, 3, 3)), "kernel_size must be an int or a pair"),
        (lambda: Conv2D(4, 3, strides=0), "strides must be a positive integer"),
        (lambda: Conv2D(4, 3, dilation_rate=-2), "dilation_rate must be a positive integer"),
        (lambda: Conv2D(4, 3, padding="full"), "padding must be 'valid' or 'same'"),
        (lambda: Conv2D(4, 3, data_format="channels_first"), "channels-last"),
        (lambda: Conv2D(4, 3, activation="softmax"), "element by element"),
        (lambda: MaxPooling2D(0), "pool_size must be a positive integer"),
        (lambda: AveragePooling2D(2, strides=(1, 0)), "strides must be a positive integer"),
        (lambda: SpatialDropout2D(1.5), r"rate must be in \[0, 1\)"),
        (lambda: Reshape((4, 0)), "positive sizes"),
        (lambda: Reshape((-1, -1)), "at most one -1"),
    ],
)
def test_non_positive_arguments_are_refused_at_construction(make, match):
    with pytest.raises(netcore.ConfigurationError, match=match):
        make()


def test_layers_that_need_images_say_so():
    with pytest.raises(netcore.ShapeError, match=r"global_max_pooling2d \(GlobalMaxPooling2D\) takes images"):
        netcore.Sequential([GlobalMaxPooling2D()], input_shape=(5,), device="numpy")
    with pytest.raises(netcore.ShapeError, match=r"cannot reshape samples of shape \(10,\)"):
        netcore.Sequential([Reshape((3, 3))], input_shape=(10,), device="numpy")
