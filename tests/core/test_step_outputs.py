"""Outputs with more axes than one are scored over their last axis (Keras's rule): a sequence output ``(time, k)`` is
``time`` rows of the loss per sample, per-sample weights spread over the steps, class weights apply per step."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Dense, Reshape

T, D, K, N = 4, 3, 5, 12


def model(device="numpy"):
    m = netcore.Sequential([Reshape((T, D)), Dense(K, "softmax")], input_dim=T * D, device=device, dtype="float64")
    return m.compile("sgd", "cross_entropy", ["accuracy"])


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T * D)), rng.integers(0, K, (N, T))


def cross_entropy_rows(probabilities, labels):
    rows = probabilities.reshape(-1, K)
    return -np.log(rows[np.arange(len(rows)), labels.reshape(-1)])


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_a_sequence_output_is_one_loss_row_per_step(device):
    m, (X, y) = model(device), data()
    probabilities = m.predict(X)
    assert probabilities.shape == (N, T, K) and m.predict_classes(X).shape == (N, T)
    result = m.evaluate(X, y, return_dict=True)
    np.testing.assert_allclose(result["loss"], cross_entropy_rows(probabilities, y).mean(), rtol=1e-12)
    expected_accuracy = (probabilities.argmax(-1) == y).mean()
    assert result["accuracy"] == pytest.approx(expected_accuracy)


def test_sample_and_class_weights_spread_over_steps():
    m, (X, y) = model(), data(1)
    losses = cross_entropy_rows(m.predict(X), y).reshape(N, T)
    sample = np.linspace(0.5, 2.0, N)
    before = m.get_weights()
    step_loss = m.train_on_batch(X, y, sample_weight=sample)
    weights = np.repeat(sample, T).reshape(N, T)
    np.testing.assert_allclose(step_loss, (losses * weights).sum() / weights.sum(), rtol=1e-12)
    m.set_weights(before)
    table = {0: 3.0, 2: 0.5}
    history = m.fit(X, y, epochs=1, batch_size=N, shuffle=False, class_weight=table, verbose=0)
    per_step = np.vectorize(lambda c: table.get(c, 1.0))(y)
    np.testing.assert_allclose(history.history["loss"][0], (losses * per_step).sum() / per_step.sum(), rtol=1e-12)


def test_targets_must_match_the_steps():
    m, (X, y) = model(), data()
    with pytest.raises(netcore.ShapeError, match=r"must have shape \(12, 4\) \(class indices\) or \(12, 4, 5\)"):
        m.evaluate(X, y[:, :3])
