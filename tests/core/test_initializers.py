"""Initialisers: the documented scales, defaults by activation, the symmetry warning, and seeded draws."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import netcore
from netcore import initializers
from netcore.layers import Dense

SCALES = {
    "he_normal": math.sqrt(2 / 400),
    "he_uniform": math.sqrt(2 / 400),
    "xavier_normal": math.sqrt(2 / 700),
    "xavier_uniform": math.sqrt(2 / 700),
    "lecun_normal": math.sqrt(1 / 400),
    "lecun_uniform": math.sqrt(1 / 400),
    "random_normal": 0.01,
    "random_uniform": 0.01 / math.sqrt(3),
}


@pytest.mark.parametrize("name", list(SCALES))
def test_standard_deviation(backend, name):
    w = initializers.get(name)(backend, backend.rng(0), (400, 300), 400, 300, backend.float_dtype("float64"))
    assert abs(backend.to_numpy(w).std() / SCALES[name] - 1) < 0.02
    assert abs(backend.to_numpy(w).mean()) < 3 * SCALES[name] / math.sqrt(400 * 300) * 3


def test_defaults_follow_the_activation():
    assert Dense(3, "relu").kernel_initializer == initializers.he_normal()
    assert Dense(3, "leaky_relu").kernel_initializer == initializers.he_normal()
    assert Dense(3, "tanh").kernel_initializer == initializers.xavier_uniform()
    assert Dense(3, "sigmoid").kernel_initializer == initializers.xavier_uniform()


def test_zero_weights_warn_about_symmetry():
    with pytest.warns(UserWarning, match="symmetry"):
        Dense(3, kernel_initializer="zeros")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dense(3, bias_initializer="zeros")


def test_unknown_initializer_suggests_a_name():
    with pytest.raises(netcore.ConfigurationError, match="did you mean 'he_normal'"):
        Dense(3, kernel_initializer="he_normall")


def test_step_activation_is_inference_only():
    model = netcore.Sequential([Dense(1, "step")], input_dim=2, device="numpy", seed=0)
    assert set(np.unique(model.predict(np.random.default_rng(0).standard_normal((20, 2))))) <= {0.0, 1.0}
    model.compile("sgd", "mse")
    with pytest.raises(netcore.ConfigurationError, match="step activation"):
        model.train_on_batch(np.ones((2, 2)), np.ones((2, 1)))


def test_train_and_eval_modes_switch_dropout():
    from netcore.layers import Dropout

    model = netcore.Sequential([Dropout(0.5)], input_dim=4, device="numpy", seed=0)
    X = np.ones((3, 4), "float32")
    assert (model.eval()(X) == 1).all()
    trained = model.train()(X)
    assert set(np.unique(trained)) <= {0.0, 2.0} and (trained == 0).any()
