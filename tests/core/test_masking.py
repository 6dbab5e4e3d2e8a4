"""Masking against a loop over sequences: a padded batch with Masking gives each sequence what the same network
gives it alone, unpadded (outputs and gradients), padded steps leave the loss of a sequence output, and a sequence
that is all padding is allowed (a zero state)."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import GRU, LSTM, Bidirectional, Dense, GlobalAveragePooling1D, Masking, SimpleRNN

TIME, FEATURES = 7, 3
LENGTHS = [7, 4, 1, 5, 6]


def padded_batch(seed=0, pre=False):
    """Sequences of LENGTHS, zero-padded after (or before) to TIME steps; no real step is all zeros."""
    rng = np.random.default_rng(seed)
    sequences = [rng.standard_normal((length, FEATURES)) + 0.1 for length in LENGTHS]
    X = np.zeros((len(LENGTHS), TIME, FEATURES))
    for i, sequence in enumerate(sequences):
        if pre:
            X[i, TIME - len(sequence) :] = sequence
        else:
            X[i, : len(sequence)] = sequence
    return X, sequences


RECURRENT = {
    "simple_rnn": lambda: SimpleRNN(4),
    "lstm": lambda: LSTM(4),
    "gru backwards": lambda: GRU(4, go_backwards=True),
    "bidirectional lstm": lambda: Bidirectional(LSTM(3)),
}


def models(make, time_steps, device="numpy"):
    model = netcore.Sequential(
        [Masking(), make(), Dense(3, "softmax")],
        input_shape=(time_steps, FEATURES),
        device=device,
        dtype="float64",
        seed=0,
    )
    return model.compile("sgd", "cross_entropy")


@pytest.mark.parametrize("pre", [False, True], ids=["post-padded", "pre-padded"])
@pytest.mark.parametrize("case", list(RECURRENT))
def test_each_sequence_gets_what_it_gets_alone(case, pre):
    X, sequences = padded_batch(pre=pre)
    y = np.arange(len(LENGTHS)) % 3
    batch = models(RECURRENT[case], TIME)
    outputs = batch.predict(X)
    batch.loss_and_gradients(*batch.prepare(X, y)[:2])
    gradients = batch.backend.to_numpy(batch.gradient_buffer).copy()
    expected = np.zeros_like(gradients)
    for i, sequence in enumerate(sequences):
        alone = models(RECURRENT[case], len(sequence))
        alone.set_weights(batch.get_weights())
        np.testing.assert_allclose(outputs[i], alone.predict(sequence[None])[0], rtol=1e-12, atol=1e-14)
        alone.loss_and_gradients(*alone.prepare(sequence[None], y[i : i + 1])[:2])
        expected += alone.backend.to_numpy(alone.gradient_buffer) / len(sequences)
    np.testing.assert_allclose(gradients, expected, rtol=1e-10, atol=1e-13)


def test_padded_steps_leave_the_loss_of_a_sequence_output():
    X, _ = padded_batch()
    y = np.random.default_rng(1).integers(0, 3, (len(LENGTHS), TIME))
    model = netcore.Sequential(
        [Masking(), GRU(4, return_sequences=True), Dense(3, "softmax")],
        input_shape=(TIME, FEATURES),
        dtype="float64",
        device="numpy",
        seed=0,
    )
    model.compile("sgd", "cross_entropy", ["accuracy"])
    probabilities = model.predict(X)
    kept = np.arange(TIME)[None, :] < np.array(LENGTHS)[:, None]
    losses = -np.log(np.take_along_axis(probabilities, y[..., None], -1)[..., 0])
    result = model.evaluate(X, y, return_dict=True)
    np.testing.assert_allclose(result["loss"], losses[kept].mean(), rtol=1e-12)
    assert result["accuracy"] == pytest.approx((probabilities.argmax(-1) == y)[kept].mean())
    np.testing.assert_allclose(model.train_on_batch(X, y), losses[kept].mean(), rtol=1e-12)
    assert np.all(model.predict(X)[~kept] == model.predict(np.zeros((1, TIME, FEATURES)))[0, 0])  # zero outputs


def test_a_sequence_of_padding_only_gives_a_zero_state_and_the_mean_over_time_skips_padding():
    X, sequences = padded_batch()
    X[2] = 0
    model = netcore.Sequential(
        [Masking(), LSTM(4, return_sequences=True), GlobalAveragePooling1D(), Dense(3, "softmax")],
        input_shape=(TIME, FEATURES),
        dtype="float64",
        device="numpy",
        seed=0,
    )
    model.compile("sgd", "cross_entropy")
    hidden = netcore.Sequential(model.layers[:3], input_shape=(TIME, FEATURES), dtype="float64", device="numpy")
    pooled = hidden.predict(X)
    assert np.all(pooled[2] == 0)
    alone = netcore.Sequential(
        [Masking(), LSTM(4, return_sequences=True)], input_shape=(LENGTHS[1], FEATURES), dtype="float64", device="numpy"
    )
    alone.set_weights(hidden.get_weights())
    np.testing.assert_allclose(pooled[1], alone.predict(sequences[1][None])[0].mean(axis=0), rtol=1e-12)
    report = netcore.check_gradients(model, X, np.arange(5) % 3)
    report.raise_if_above(1e-6)


def test_masked_training_is_the_same_on_every_backend(other_backend):
    X, _ = padded_batch()
    y = np.arange(len(LENGTHS)) % 3
    results = []
    for device in ("numpy", other_backend.name):
        model = models(RECURRENT["bidirectional lstm"], TIME, device)
        model.fit(X, y, epochs=3, batch_size=5, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_a_bidirectional_masked_model_round_trips_through_a_checkpoint(tmp_path):
    X, _ = padded_batch()
    y = np.arange(len(LENGTHS)) % 3
    model = models(lambda: Bidirectional(GRU(4, return_sequences=True), merge_mode="ave"), TIME)
    model.fit(X, y[:, None].repeat(TIME, 1), epochs=2, batch_size=5, verbose=0)
    model.save(tmp_path / "m.ncz")
    loaded = netcore.load(tmp_path / "m.ncz")
    assert isinstance(loaded.layers[1], Bidirectional) and loaded.layers[1].merge_mode == "ave"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
