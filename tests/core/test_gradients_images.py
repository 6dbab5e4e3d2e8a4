"""float64 central-difference checks of the image layers on every backend: strides, padding, dilation, odd sizes,
overlapping and padded pooling windows, batch norm over channels, spatial dropout and frozen layers."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import (
    Activation,
    AveragePooling2D,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    Reshape,
    SpatialDropout2D,
)

TOLERANCE = 1e-6
ROWS = 5

CASES = {
    "conv valid": ((6, 5, 2), lambda: [Conv2D(3, 3, activation="tanh"), Flatten(), Dense(3, "softmax")]),
    "wide inputs: input gradients by window positions": (
        (5, 4, 2),
        lambda: [
            Conv2D(16, 2, padding="same", activation="tanh"),
            Conv2D(3, 3, strides=2, padding="same", activation="elu"),
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "3x3 at stride 1 from 16 channels (numba: by Winograd)": (
        (5, 4, 16),
        lambda: [
            Conv2D(16, 3, padding="same", activation="tanh"),
            Conv2D(16, 3, activation="elu"),
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "conv same stride 2 odd": (
        (7, 5, 3),
        lambda: [Conv2D(4, (3, 2), strides=2, padding="same", activation="elu"), Flatten(), Dense(3, "softmax")],
    ),
    "conv dilation": (
        (8, 7, 1),
        lambda: [Conv2D(2, 3, dilation_rate=(2, 1), padding="same", activation="softplus"), Flatten(), Dense(3)],
    ),
    "conv 1x1 and even kernel": (
        (5, 6, 3),
        lambda: [Conv2D(4, 1, activation="sigmoid"), Conv2D(3, 2, strides=(1, 2), padding="same"), Flatten(), Dense(2)],
    ),
    "max pool padded and overlapping": (
        (7, 6, 2),
        lambda: [
            Conv2D(3, 2, activation="tanh"),
            MaxPooling2D(3, strides=2, padding="same"),
            MaxPooling2D(2, strides=1),
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "average pool same": (
        (7, 7, 2),
        lambda: [Conv2D(3, 3, activation="gelu"), AveragePooling2D(2, padding="same"), Flatten(), Dense(3)],
    ),
    "global pools": (
        (6, 5, 2),
        lambda: [Conv2D(3, 3, padding="same", activation="tanh"), GlobalMaxPooling2D(), Dense(3, "softmax")],
    ),
    "global average keepdims": (
        (5, 5, 2),
        lambda: [Conv2D(3, 3), GlobalAveragePooling2D(keepdims=True), Conv2D(2, 1), Flatten(), Dense(2)],
    ),
    "batch norm over channels": (
        (5, 4, 2),
        lambda: [Conv2D(3, 3, padding="same", use_bias=False), BatchNorm(), Activation("tanh"), Flatten(), Dense(2)],
    ),
    "spatial dropout": (
        (5, 5, 2),
        lambda: [Conv2D(4, 3, activation="tanh"), SpatialDropout2D(0.4), GlobalAveragePooling2D(), Dense(2)],
    ),
    "dense on channels and reshape": (
        (18,),
        lambda: [Reshape((3, 3, 2)), Dense(4, "tanh"), Conv2D(3, 2), Flatten(), Dense(2)],
    ),
}


def check(backend, layers, shape, n_out=3):
    model = netcore.Sequential(layers, input_shape=shape, device=backend.name, dtype="float64", seed=1)
    final = model.layers[-1]
    softmax = getattr(final, "activation", None) is not None and final.activation.kind == "softmax"
    model.compile("sgd", "cross_entropy" if softmax else "mse")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, *shape))
    outputs = model.n_outputs
    y = rng.integers(0, outputs, ROWS) if softmax else rng.standard_normal((ROWS, outputs))
    report = netcore.check_gradients(model, X, y)
    trained = [s for layer in model.layers if layer.trainable for s in layer.param_specs()]
    assert len(report) == len(trained)
    report.raise_if_above(TOLERANCE)


@pytest.mark.parametrize("case", list(CASES))
def test_image_layer(backend, case):
    shape, layers = CASES[case]
    check(backend, layers(), shape)


def test_frozen_layers_are_left_out(backend):
    layers = [Conv2D(3, 3, trainable=False), BatchNorm(trainable=False), Activation("tanh"), Flatten(), Dense(2)]
    check(backend, layers, (5, 5, 2))
