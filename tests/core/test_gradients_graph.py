"""Float64 finite-difference checks of graphs: every merge layer (broadcasting included), fan-out (a tensor read by
several layers), a layer called twice, a nested model called twice, and two outputs with weighted losses."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import (
    Add,
    Average,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)
from netcore.models import Model

TOLERANCE = 1e-6
ROWS = 6
ELEMENTWISE = [Add, Subtract, Multiply, Average, Maximum, Minimum]


def check(backend, inputs, outputs, losses="mse", loss_weights=None, classes=None):
    model = Model(inputs, outputs, device=backend.name, dtype="float64", seed=1)
    model.compile("sgd", losses, loss_weights=loss_weights)
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((ROWS, *t.sample_shape)) for t in model.inputs]
    y = [
        rng.integers(0, shape[-1], ROWS) if head.loss.name == "CrossEntropy" else rng.standard_normal((ROWS, *shape))
        for head, shape in zip(model.heads, model.output_shapes, strict=True)
    ]
    report = netcore.check_gradients(model, X, y)
    assert len(report) == sum(len(layer.param_specs()) for layer in model.leaf_layers())
    report.raise_if_above(TOLERANCE)


@pytest.mark.parametrize("merge", ELEMENTWISE, ids=lambda cls: cls.__name__)
def test_elementwise_merge(backend, merge):
    x = Input((4,))
    branches = [Dense(5, "tanh")(x) for _ in range(2 if merge is Subtract else 3)]
    check(backend, [x], [Dense(2)(merge()(branches))])


@pytest.mark.parametrize("merge", ELEMENTWISE, ids=lambda cls: cls.__name__)
def test_elementwise_merge_broadcasting_a_size_one_axis(backend, merge):
    x = Input((3, 4))
    full, narrow = Dense(4, "tanh")(x), Dense(1, "tanh")(x)  # (3, 4) and (3, 1)
    check(backend, [x], [Dense(2)(Flatten()(merge()([full, narrow])))])


def test_concatenate_on_the_last_and_an_inner_axis(backend):
    image = Input((4, 4, 2))
    a, b = Conv2D(2, 3, padding="same", activation="tanh")(image), Conv2D(3, 1)(image)
    channels = Concatenate()([a, b])
    rows = Concatenate(axis=1)([channels, Conv2D(5, 3, padding="same", strides=(2, 1))(image)])
    check(backend, [image], [Dense(2)(GlobalAveragePooling2D()(rows))])


def test_fan_out_to_three_readers_and_an_output(backend):
    x = Input((4,))
    h = Dense(5, "tanh")(x)
    out = Dense(2)(Add()([Dense(5, "tanh")(h), Dense(5, "sigmoid")(h), h]))
    check(backend, [x], [out, Dense(3, "softmax")(h)], ["mse", "cross_entropy"], loss_weights=[1.0, 0.3])


def test_a_layer_called_twice_and_a_merge_of_one_tensor_with_itself(backend):
    a, b = Input((4,)), Input((4,))
    shared = Dense(4, "tanh")
    twice = shared(shared(a))  # the same layer on its own output
    check(backend, [a, b], [Dense(2)(Multiply()([twice, shared(b), twice]))])


def test_a_nested_model_called_twice(backend):
    inner_input = Input((4,))
    inner = Model(inner_input, Dense(3, "tanh")(Dense(4, "elu")(inner_input)))
    a, b = Input((4,)), Input((4,))
    check(backend, [a, b], [Dense(2)(Concatenate()([inner(a), inner(b)]))])


def test_mobilenet_layers(backend):
    from netcore.layers import DepthwiseConv2D, ReLU, ZeroPadding2D

    x = Input((6, 5, 3))
    h = ZeroPadding2D(((1, 2), (0, 1)))(x)
    h = DepthwiseConv2D((3, 2), strides=(2, 1), depth_multiplier=2, activation="tanh")(h)
    h = ReLU(0.4, negative_slope=0.3, threshold=-0.05)(h)
    h = DepthwiseConv2D(3, padding="same", dilation_rate=2, use_bias=False)(h)
    check(backend, [x], [Dense(2)(Flatten()(h))])
