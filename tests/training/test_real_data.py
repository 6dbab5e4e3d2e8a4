"""The curriculum's classic problems on real bundled data, on numpy and numba with fixed seeds."""

from __future__ import annotations

import pytest

import netcore
from netcore import datasets
from netcore.layers import BatchNorm, Dense, Dropout
from tests.conftest import require

pytestmark = pytest.mark.slow
CPU = ["numpy", "numba"]


def accuracy(device, name, layers, optimizer, epochs, batch_size=32, seed=0):
    require(device)
    data = datasets.load(name, seed=seed)
    model = netcore.Sequential(layers, input_dim=data.n_features, device=device, seed=seed)
    model.compile(optimizer, "binary_crossentropy" if layers[-1].units == 1 else "cross_entropy", ["accuracy"])
    y_train = data.y_train.reshape(-1, 1) if layers[-1].units == 1 else data.y_train
    y_test = data.y_test.reshape(-1, 1) if layers[-1].units == 1 else data.y_test
    model.fit(data.X_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    return model.evaluate(data.X_test, y_test, return_dict=True)["accuracy"]


@pytest.mark.parametrize("device", CPU)
def test_logistic_regression_is_one_sigmoid_neuron(device):
    acc = accuracy(device, "breast_cancer", [Dense(1, "sigmoid")], netcore.optimizers.SGD(lr=0.1), epochs=30)
    assert acc >= 0.95


@pytest.mark.parametrize("device", CPU)
def test_small_net_with_dropout_and_batchnorm_on_breast_cancer(device):
    layers = [
        Dense(32, use_bias=False),
        BatchNorm(),
        netcore.layers.Activation("relu"),
        Dropout(0.2),
        Dense(1, "sigmoid"),
    ]
    assert accuracy(device, "breast_cancer", layers, netcore.optimizers.Adam(lr=1e-3), epochs=50) >= 0.97


@pytest.mark.parametrize("device", CPU)
def test_wine(device):
    layers = [Dense(16, "tanh"), Dense(3, "softmax")]
    assert accuracy(device, "wine", layers, netcore.optimizers.Adam(lr=1e-2), epochs=40, batch_size=16) >= 0.95


@pytest.mark.parametrize("device", CPU)
def test_iris(device):
    layers = [Dense(16, "relu"), Dense(3, "softmax")]
    assert accuracy(device, "iris", layers, netcore.optimizers.Adam(lr=1e-2), epochs=60, batch_size=16) >= 0.93
