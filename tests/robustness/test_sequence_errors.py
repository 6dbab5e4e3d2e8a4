"""Bad input to recurrent models: wrong rank, feature count or sequence length, non-positive units, options a
Sequential model cannot honour. Each raises a NetcoreError naming the layer and the shapes; the model is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import GRU, LSTM, Bidirectional, Dense, GlobalAveragePooling1D, Masking, SimpleRNN
from tests.robustness.fingerprint import fingerprint

SHAPE = (6, 3)


@pytest.fixture(params=["numpy", "numba"])
def model(request):
    m = netcore.Sequential([LSTM(4, name="reader"), Dense(2, "softmax")], input_shape=SHAPE, device=request.param)
    m.compile("adam", "cross_entropy")
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((8, *SHAPE)), np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    return m


def refused(model, call, match):
    before = fingerprint(model)
    with pytest.raises(netcore.ShapeError, match=match):
        call()
    assert fingerprint(model) == before


def test_wrong_feature_count_and_length_name_the_first_layer_and_both_shapes(model):
    refused(model, lambda: model.predict(np.ones((2, 6, 4))), r"samples of shape \(6, 4\).*\(reader\).*\(6, 3\)")
    refused(model, lambda: model.predict(np.ones((2, 5, 3))), r"samples of shape \(5, 3\).*\(reader\).*\(6, 3\)")
    refused(
        model, lambda: model.fit(np.ones((2, 18)), np.zeros(2, int), verbose=0), r"reshape with X.reshape\(-1, 6, 3\)"
    )


def test_a_table_given_to_an_unbuilt_recurrent_model_names_the_layer():
    m = netcore.Sequential([GRU(3, name="gru_first"), Dense(2)], device="numpy")
    m.compile("sgd", "mse")
    with pytest.raises(netcore.ShapeError, match=r"gru_first \(GRU\) takes sequences \(time, features\), got input"):
        m.fit(np.ones((4, 5)), np.ones((4, 2)), verbose=0)
    assert not m.built


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: LSTM(0), netcore.ConfigurationError, "units must be a positive integer"),
        (lambda: GRU(-3), netcore.ConfigurationError, "units must be a positive integer"),
        (lambda: SimpleRNN(4, activation="softmax"), netcore.ConfigurationError, "element by element"),
        (lambda: LSTM(4, activation="relu"), netcore.ConfigurationError, "standard cell"),
        (lambda: LSTM(4, return_state=True), netcore.ConfigurationError, "several outputs"),
        (lambda: GRU(4, reset_after=False), netcore.ConfigurationError, "reset_after=False"),
        (lambda: Bidirectional(Dense(3)), netcore.ConfigurationError, "wraps a recurrent layer"),
        (lambda: Bidirectional(LSTM(3), merge_mode=None), netcore.ConfigurationError, "merge_mode"),
        (lambda: netcore.optimizers.Adam(global_clipnorm=0), netcore.ConfigurationError, "global_clipnorm"),
        (lambda: netcore.optimizers.SGD(clipvalue=-1), netcore.ConfigurationError, "clipvalue"),
    ],
)
def test_bad_arguments_are_refused_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer", [lambda: Masking(), lambda: GlobalAveragePooling1D(), lambda: SimpleRNN(2)])
def test_sequence_layers_refuse_images_and_tables(layer):
    for shape in ((5,), (4, 4, 1)):
        with pytest.raises(netcore.ShapeError, match="takes sequences"):
            netcore.Sequential([layer()], input_shape=shape, device="numpy")
