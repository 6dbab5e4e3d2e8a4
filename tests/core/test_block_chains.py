"""Runs of layers that work in blocks of images (convolutions, pooling) run as one chain each way: one hand-over to
the block threads per pass, a block through every member on one thread. Chained, a model trains as it does with every
layer handing its own blocks over; a fan-out keeps the backward chain from crossing it; an error names its layer."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D
from netcore.models.block_chain import BlockChain
from netcore.models.executor import Executor
from tests.conftest import require
from tests.core.test_conv_blocks import SHAPE, assert_trained_alike, data, train


def lenet_like(device, dtype="float64"):
    layers = [
        Conv2D(4, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Conv2D(5, 3, activation="tanh"),
        AveragePooling2D(2, padding="same"),
        Flatten(),
        Dense(3, "softmax"),
    ]
    net = netcore.Sequential(layers, input_shape=SHAPE, device=device, dtype=dtype, seed=3)
    net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    return net


def branching(device):
    """A convolution read by a pooling layer and by a second convolution: a fan-out inside the image layers."""
    inputs = netcore.Input(SHAPE)
    features = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    pooled = Flatten()(MaxPooling2D(2)(features))
    deeper = Flatten()(MaxPooling2D(2)(Conv2D(3, 3, padding="same")(features)))
    outputs = Dense(3, "softmax")(netcore.layers.Concatenate()([pooled, deeper]))
    net = netcore.Model(inputs, outputs, device=device, dtype="float64", seed=4)
    net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    return net


def chains(net, plan: str) -> list[list[str]]:
    units = [entry[0] for entry in getattr(net.executor, plan)]
    return [[step.runner.name for step in unit.steps] for unit in units if isinstance(unit, BlockChain)]


def unchained(monkeypatch):
    monkeypatch.setattr(Executor, "_forward_link", lambda self, previous, step: False)
    monkeypatch.setattr(Executor, "_backward_link", lambda self, previous, step: False)


def test_runs_of_image_layers_become_one_chain_each_way(numpy_backend):
    net = lenet_like("numpy")
    image_layers = ["conv2d", "max_pooling2d", "conv2d_1", "average_pooling2d"]
    assert chains(net, "forward_plan") == [image_layers]
    assert chains(net, "backward_plan") == [image_layers[::-1]]


def test_a_fan_out_keeps_the_backward_chain_from_crossing_it(numpy_backend):
    net = branching("numpy")
    # Forwards a chain may end where its output has other readers: they read it once the chain is done.
    assert chains(net, "forward_plan") == [["conv2d", "max_pooling2d"], ["conv2d_1", "max_pooling2d_1"]]
    # Backwards conv2d's output gradient sums two readers' gradients, so no chain reaches conv2d.
    assert chains(net, "backward_plan") == [["max_pooling2d_1", "conv2d_1"]]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("build", [lenet_like, branching])
def test_chained_models_train_as_layer_by_layer(name, threads, build, monkeypatch):
    backend = require(name)
    monkeypatch.setattr(backend, "block_threads", threads)
    chained = train(build(name))
    unchained(monkeypatch)
    alone = build(name)
    assert chains(alone, "forward_plan") == []
    layer_by_layer = train(alone)
    assert_trained_alike(chained, layer_by_layer, atol=1e-13)


def test_chained_gradients_pass_the_central_difference_check(backend):
    net = lenet_like(backend.name)
    X, y = data(4)
    netcore.check_gradients(net, X, y).raise_if_above(1e-6)


def test_a_failing_block_names_its_layer_and_the_model_is_unchanged(monkeypatch):
    backend = require("numba")
    monkeypatch.setattr(backend, "block_threads", 2)
    net = lenet_like("numba")
    X, y = data()
    before = net.get_weights()
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("the second block fails")

    monkeypatch.setattr(backend, "max_pool_backward", failing)
    monkeypatch.setattr(backend, "max_pool_relu_backward", failing)  # where the pooling applies the ReLU
    with pytest.raises(MemoryError, match="second block"):
        net.train_on_batch(X, y)
    assert net.executor.current.name == "max_pooling2d"
    for got, want in zip(net.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def handing_over(net) -> list[list[str]]:
    """Per forward chain, the members that leave their bias and ReLU to the max-pooling after them."""
    chained = [entry[0] for entry in net.executor.forward_plan if isinstance(entry[0], BlockChain)]
    return [[unit.steps[i].runner.name for i in sorted(unit.handing_over)] for unit in chained]


def test_a_convolution_leaves_bias_and_relu_to_the_max_pooling_that_alone_reads_it(monkeypatch):
    backend = require("numba")
    assert backend.fuses_bias_relu_into_max_pool
    assert handing_over(lenet_like("numba")) == [["conv2d"]]  # the tanh convolution before the mean keeps its own
    assert handing_over(branching("numba")) == [[], ["conv2d_1"]]  # conv2d is read twice; conv2d_1 hands its bias on
    monkeypatch.setattr(backend, "fuses_bias_relu_into_max_pool", False)
    assert handing_over(lenet_like("numba")) == [[]]


def linear_then_pooled(device):
    """Convolutions with ReLU and without an activation, with and without a bias, each before a max-pooling."""
    layers = [
        Conv2D(4, 3, padding="same", activation="relu", use_bias=False),
        MaxPooling2D(2, padding="same"),
        Conv2D(5, 2, padding="same"),
        MaxPooling2D(2),
        Flatten(),
        Dense(3, "softmax"),
    ]
    net = netcore.Sequential(layers, input_shape=SHAPE, device=device, dtype="float64", seed=5)
    net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    return net


@pytest.mark.parametrize("build", [lenet_like, linear_then_pooled])
def test_bias_and_relu_applied_by_the_pooling_train_exactly_as_by_the_convolution(backend, build, monkeypatch):
    monkeypatch.setattr(backend, "fuses_bias_relu_into_max_pool", True)
    fused_model = build(backend)
    assert any(handing_over(fused_model)[0])
    fused = train(fused_model)
    monkeypatch.setattr(backend, "fuses_bias_relu_into_max_pool", False)
    apart = train(build(backend))
    for mine, reference in zip([fused[0], *fused[1], fused[2]], [apart[0], *apart[1], apart[2]], strict=True):
        np.testing.assert_array_equal(mine, reference)


def test_bias_and_relu_applied_by_the_pooling_pass_the_gradient_check():
    require("numba")
    net = linear_then_pooled("numba")
    assert handing_over(net) == [["conv2d", "conv2d_1"]]
    X, y = data(5)
    netcore.check_gradients(net, X, y).raise_if_above(1e-6)
