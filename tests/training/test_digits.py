"""End to end on real data: scikit-learn's digits trains to >= 97% on numpy and numba, and the two runs agree."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import datasets
from netcore.layers import Dense


def train_digits(device: str, epochs: int = 30):
    data = datasets.load("digits", seed=0)
    model = netcore.Sequential(
        [Dense(128, "relu"), Dense(64, "relu"), Dense(10, "softmax")], input_dim=data.n_features, device=device, seed=0
    )
    model.compile(netcore.optimizers.Adam(lr=1e-3), "cross_entropy", metrics=["accuracy"])
    history = model.fit(data.X_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return history, model.evaluate(data.X_test, data.y_test, return_dict=True), model


@pytest.fixture(scope="module")
def numpy_run():
    return train_digits("numpy")


@pytest.mark.slow
def test_digits_reaches_97_percent_on_numpy(numpy_run):
    _, test, _ = numpy_run
    assert test["accuracy"] >= 0.97


@pytest.mark.slow
def test_digits_on_other_backends_matches_numpy(numpy_run, other_backend):
    history, test, _ = train_digits(other_backend)
    assert test["accuracy"] >= 0.97
    reference = numpy_run[0]["loss"][-1]
    assert abs(history["loss"][-1] - reference) / reference < 1e-3


def test_same_seed_same_initial_weights_on_every_backend(backend):
    def make(device):
        return netcore.Sequential([Dense(7, "tanh"), Dense(3, "softmax")], input_dim=5, device=device, seed=42)

    for a, b in zip(make("numpy").get_weights(), make(backend.name).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_training_on_a_backend(backend):
    data = datasets.load("iris", seed=1)

    def run():
        model = netcore.Sequential([Dense(8, "relu"), Dense(3, "softmax")], input_dim=4, device=backend.name, seed=3)
        model.compile("sgd", "cross_entropy")
        model.fit(data.X_train, data.y_train, epochs=3, batch_size=16, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float64_models_train(backend):
    data = datasets.load("iris", seed=0)
    model = netcore.Sequential(
        [Dense(16, "tanh"), Dense(3, "softmax")], input_dim=4, device=backend.name, dtype="float64", seed=0
    )
    model.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy", metrics=["accuracy"])
    model.fit(data.X_train, data.y_train, epochs=40, batch_size=16, verbose=0)
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert model.evaluate(data.X_test, data.y_test, return_dict=True)["accuracy"] >= 0.9


def test_predict_returns_numpy_probabilities(backend):
    model = netcore.Sequential([Dense(4, "relu"), Dense(3, "softmax")], input_dim=2, device=backend.name, seed=0)
    out = model.predict(np.ones((5, 2), "float32"))
    assert isinstance(out, np.ndarray) and out.shape == (5, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-6)


def test_set_weights_round_trips_and_checks_shapes(backend):
    model = netcore.Sequential([Dense(4, "relu"), Dense(2, "sigmoid")], input_dim=3, device=backend.name, seed=0)
    weights = [np.full_like(w, i) for i, w in enumerate(model.get_weights())]
    model.set_weights(weights)
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [w.shape for w in weights] == [(3, 4), (4,), (4, 2), (2,)]
    with pytest.raises(netcore.ShapeError, match="dense.W"):
        model.set_weights([np.zeros((4, 3))] + weights[1:])
