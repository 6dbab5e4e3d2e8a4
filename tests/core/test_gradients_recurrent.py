"""float64 central-difference checks through time of the recurrent layers on every backend: every activation kind
SimpleRNN takes, LSTM and GRU with and without bias, reversed sequences, returned sequences, stacked layers."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import GRU, LSTM, Dense, Flatten, SimpleRNN

TOLERANCE = 1e-6
SHAPE = (6, 3)

CASES = {
    "simple_rnn": lambda: [SimpleRNN(4), Dense(3, "softmax")],
    "simple_rnn gelu sequences backwards": lambda: [
        SimpleRNN(4, activation="gelu", return_sequences=True, go_backwards=True),
        Flatten(),
        Dense(3, "softmax"),
    ],
    "simple_rnn relu no bias": lambda: [SimpleRNN(4, activation="relu", use_bias=False), Dense(3, "softmax")],
    "lstm": lambda: [LSTM(4), Dense(3, "softmax")],
    "lstm sequences backwards no forget bias": lambda: [
        LSTM(3, return_sequences=True, go_backwards=True, unit_forget_bias=False),
        Dense(3, "softmax"),
    ],
    "gru": lambda: [GRU(4), Dense(3, "softmax")],
    "gru no bias sequences": lambda: [GRU(3, use_bias=False, return_sequences=True), Dense(3, "softmax")],
    "stacked": lambda: [LSTM(4, return_sequences=True), GRU(3, return_sequences=True), SimpleRNN(3), Dense(3)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_recurrent_layer(backend, case):
    model = netcore.Sequential(CASES[case](), input_shape=SHAPE, device=backend.name, dtype="float64", seed=1)
    softmax = model.layers[-1].activation.kind == "softmax"
    model.compile("sgd", "cross_entropy" if softmax else "mse")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, *SHAPE))
    steps = model.output_shape[:-1]
    y = rng.integers(0, 3, (5, *steps)) if softmax else rng.standard_normal((5, *model.output_shape))
    report = netcore.check_gradients(model, X, y)
    assert len(report) == sum(len(layer.param_specs()) for layer in model.layers)
    report.raise_if_above(TOLERANCE)
