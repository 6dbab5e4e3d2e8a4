"""float64 central-difference checks of every activation, loss and layer, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import losses
from netcore.layers import Activation, BatchNorm, Dense, Dropout, GaussianNoise
from netcore.regularizers import L1, L1L2, L2

TOLERANCE = 1e-6
ROWS, FEATURES = 7, 4


def data(n_out: int, targets: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((ROWS, FEATURES))
    if targets == "index":
        y = rng.integers(0, n_out, ROWS)
    elif targets == "onehot":
        y = np.eye(n_out)[rng.integers(0, n_out, ROWS)]
    elif targets == "unit":
        y = rng.random((ROWS, n_out))
    elif targets == "binary":
        y = rng.integers(0, 2, (ROWS, n_out)).astype(float)
    elif targets == "sign":
        y = rng.choice([-1.0, 1.0], (ROWS, n_out))
    elif targets == "distribution":
        t = rng.random((ROWS, n_out)) + 0.1
        y = t / t.sum(1, keepdims=True)
    else:
        y = rng.standard_normal((ROWS, n_out))
    return X, y


def check(backend, layers, loss, targets, n_out, **fit_options):
    model = netcore.Sequential(layers, input_dim=FEATURES, device=backend.name, dtype="float64", seed=1)
    model.compile("sgd", loss)
    X, y = data(n_out, targets)
    report = netcore.check_gradients(model, X, y, **fit_options)
    assert len(report) == sum(len(layer.param_specs()) for layer in model.layers)
    report.raise_if_above(TOLERANCE)


ACTIVATIONS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "gelu_tanh", "softmax"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation(backend, activation):
    check(backend, [Dense(6, activation), Dense(3)], "mse", "real", 3)


@pytest.mark.parametrize("activation", [netcore.activations.leaky_relu(0.2), netcore.activations.elu(0.7)])
def test_parametrised_activation(backend, activation):
    check(backend, [Dense(6, activation), Dense(2)], "mse", "real", 2)


@pytest.mark.parametrize("activation", ["tanh", "softmax", "gelu"])
def test_activation_layer(backend, activation):
    check(backend, [Dense(5), Activation(activation), Dense(2)], "mse", "real", 2)


LOSS_CASES = {
    "cross_entropy fused softmax": ("softmax", losses.CrossEntropy(), "index", 3),
    "cross_entropy smoothing one-hot": ("softmax", losses.CrossEntropy(label_smoothing=0.1), "onehot", 3),
    "cross_entropy from logits": ("linear", losses.CrossEntropy(from_logits=True), "index", 4),
    "cross_entropy on probabilities": ("sigmoid", losses.CrossEntropy(label_smoothing=0.05), "index", 3),
    "cross_entropy sum": ("softmax", losses.CrossEntropy(reduction="sum"), "index", 3),
    "bce fused sigmoid": ("sigmoid", losses.BinaryCrossEntropy(), "binary", 1),
    "bce logits pos_weight": ("linear", losses.BinaryCrossEntropy(from_logits=True, pos_weight=3.0), "binary", 2),
    "bce on probabilities": ("softmax", losses.BinaryCrossEntropy(), "unit", 3),
    "mse": ("linear", losses.MeanSquaredError(), "real", 2),
    "mse halved": ("linear", losses.MeanSquaredError(half=True), "real", 2),
    "mae": ("linear", losses.MeanAbsoluteError(), "real", 2),
    "huber": ("linear", losses.Huber(delta=0.5), "real", 2),
    "poisson log rates": ("linear", losses.PoissonNLL(), "unit", 2),
    "poisson summed over outputs": ("linear", losses.PoissonNLL(sum_outputs=True), "unit", 3),
    "bce summed over outputs": ("sigmoid", losses.BinaryCrossEntropy(sum_outputs=True), "binary", 3),
    "poisson rates": ("softmax", losses.PoissonNLL(log_input=False), "unit", 3),
    "hinge": ("linear", losses.Hinge(), "sign", 1),
    "multiclass_hinge": ("linear", losses.MultiClassHinge(), "index", 3),
    "kl_divergence": ("softmax", losses.KLDivergence(), "distribution", 3),
}


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_loss(backend, case):
    final, loss, targets, n_out = LOSS_CASES[case]
    check(backend, [Dense(5, "tanh"), Dense(n_out, final)], loss, targets, n_out)


def test_sample_weights(backend):
    weights = np.linspace(0.5, 2.0, ROWS)
    check(backend, [Dense(5, "tanh"), Dense(3, "softmax")], "cross_entropy", "index", 3, sample_weight=weights)


@pytest.mark.parametrize(
    "layers",
    [
        pytest.param(lambda: [Dense(5, "relu", use_bias=False), Dense(2)], id="dense-no-bias"),
        pytest.param(
            lambda: [Dense(5, use_bias=False), BatchNorm(), Activation("relu"), Dense(2)], id="batchnorm-torch"
        ),
        pytest.param(lambda: [Dense(5, use_bias=False), BatchNorm(convention="keras"), Dense(2)], id="batchnorm-keras"),
        pytest.param(lambda: [Dense(6, "tanh"), Dropout(0.4), Dense(2)], id="dropout"),
        pytest.param(lambda: [GaussianNoise(0.3), Dense(5, "tanh"), Dense(2)], id="gaussian-noise"),
        pytest.param(
            lambda: [Dense(5, "tanh", kernel_regularizer=L2(0.1)), Dense(2, kernel_regularizer=L1(0.05))], id="l1-l2"
        ),
        pytest.param(
            lambda: [Dense(5, "tanh", kernel_regularizer=L1L2(0.01, 0.1), bias_regularizer=L2(0.2)), Dense(2)],
            id="l1l2-bias",
        ),
    ],
)
def test_layer(backend, layers):
    check(backend, layers(), "mse", "real", 2)


def test_report_names_the_failing_layer():
    report = netcore.GradientReport({"dense.W": 1e-9, "dense_1.b": 0.3})
    assert report.worst() == ("dense_1.b", 0.3)
    with pytest.raises(netcore.NetcoreError, match="dense_1.b"):
        report.raise_if_above(1e-6)


def test_float32_models_are_checked_in_float64(backend):
    model = netcore.Sequential([Dense(4, "tanh"), Dense(2, "softmax")], input_dim=FEATURES, device=backend.name, seed=0)
    model.compile("adam", "cross_entropy")
    X, y = data(2, "index")
    netcore.check_gradients(model, X.astype("float32"), y).raise_if_above(TOLERANCE)
    assert model.get_weights()[0].dtype == np.float32
