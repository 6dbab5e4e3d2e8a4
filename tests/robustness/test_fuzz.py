"""Hypothesis throws generated bad inputs at fit, predict, evaluate, set_weights, load and the command line: every one
must end in a NetcoreError (never a raw IndexError, numba TypingError or cupy error) and leave the model unchanged.

The number of examples per target is set so that together they try well over 200 bad inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netcore
from netcore.cli import main as cli_main
from netcore.layers import BatchNorm, Dense, Dropout
from tests.robustness.fingerprint import fingerprint

FEATURES, CLASSES = 4, 3
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["numpy", "numba"])
def trained(request):
    """A small model that has already trained a little (so its optimizer and generator carry state)."""
    model = netcore.Sequential(
        [Dense(6, "relu"), BatchNorm(), Dropout(0.2), Dense(CLASSES, "softmax")],
        input_dim=FEATURES,
        device=request.param,
        seed=0,
    )
    model.compile("adam", "cross_entropy", ["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((20, FEATURES)), rng.integers(0, CLASSES, 20), epochs=1, batch_size=5, verbose=0)
    return model


def good_data(rows):
    rng = np.random.default_rng(rows)
    return rng.standard_normal((rows, FEATURES)), rng.integers(0, CLASSES, rows)


@st.composite
def bad_features(draw):
    rows = draw(st.integers(1, 12))
    X, _ = good_data(rows)
    defect = draw(
        st.sampled_from(
            [
                "width",
                "nan",
                "inf",
                "3d",
                "empty",
                "strings",
                "complex",
                "ragged",
                "none",
                "text",
                "object",
                "zero-width",
            ]
        )
    )
    if defect == "width":
        return defect, rows, np.ones((rows, draw(st.sampled_from([1, 3, 5, 9]))))
    if defect in ("nan", "inf"):
        X[draw(st.integers(0, rows - 1)), draw(st.integers(0, FEATURES - 1))] = np.nan if defect == "nan" else -np.inf
        return defect, rows, X
    return (
        defect,
        rows,
        {
            "3d": np.ones((rows, FEATURES, 2)),
            "empty": np.ones((0, FEATURES)),
            "strings": np.full((rows, FEATURES), "a"),
            "complex": X.astype(complex),
            "ragged": [[1.0, 2.0], [1.0]],
            "none": None,
            "text": "hello",
            "object": np.array([[object()] * FEATURES] * rows),
            "zero-width": np.ones((rows, 0)),
        }[defect],
    )


@st.composite
def bad_targets(draw):
    rows = draw(st.integers(2, 12))
    X, y = good_data(rows)
    defect = draw(
        st.sampled_from(
            ["length", "negative", "too-large", "fraction", "nan", "width", "strings", "none", "scalar", "2d-index"]
        )
    )
    y = {
        "length": y[: rows - 1],
        "negative": np.where(np.arange(rows) == 0, -1, y),
        "too-large": np.where(np.arange(rows) == rows - 1, CLASSES + draw(st.integers(0, 5)), y),
        "fraction": y + 0.5,
        "nan": np.where(np.arange(rows) == 1, np.nan, y.astype(float)),
        "width": np.ones((rows, CLASSES + 1)),
        "strings": np.array(["cat"] * rows),
        "none": None,
        "scalar": 3,
        "2d-index": y.reshape(-1, 1),
    }[defect]
    return defect, X, y


BAD_FIT_OPTIONS = st.sampled_from(
    [
        {"batch_size": 0},
        {"batch_size": -3},
        {"batch_size": 2.5},
        {"batch_size": "8"},
        {"batch_size": True},
        {"epochs": -1},
        {"epochs": 1.5},
        {"epochs": "2"},
        {"validation_split": 1.0},
        {"validation_split": -0.2},
        {"validation_split": "x"},
        {"verbose": 5},
        {"on_nonfinite": "disregard"},
        {"class_weight": [1, 2]},
        {"class_weight": {7: 1.0}},
        {"class_weight": {0: "heavy"}},
        {"class_weight": {0: -1.0}},
        {"sample_weight": [1.0, 2.0]},
        {"sample_weight": "w"},
        {"validation_data": ([1, 2],)},
        {"validation_data": (np.ones((3, FEATURES + 1)), np.zeros(3, int))},
    ]
)


def assert_rejected(model, call):
    before = fingerprint(model)
    with pytest.raises(netcore.NetcoreError):
        call()
    assert fingerprint(model) == before


@settings(max_examples=60, **SETTINGS)
@given(case=bad_features())
def test_fit_rejects_bad_features(trained, case):
    _, rows, X = case
    assert_rejected(trained, lambda: trained.fit(X, np.zeros(rows, int), epochs=1, verbose=0))


@settings(max_examples=50, **SETTINGS)
@given(case=bad_targets())
def test_fit_rejects_bad_targets(trained, case):
    _, X, y = case
    assert_rejected(trained, lambda: trained.fit(X, y, epochs=1, verbose=0))


@settings(max_examples=40, **SETTINGS)
@given(options=BAD_FIT_OPTIONS, rows=st.integers(4, 12))
def test_fit_rejects_bad_options(trained, options, rows):
    X, y = good_data(rows)
    options = {"epochs": 1, "verbose": 0, **options}
    assert_rejected(trained, lambda: trained.fit(X, y, **options))


@settings(max_examples=30, **SETTINGS)
@given(case=bad_features(), batch_size=st.sampled_from([1, 4, 0, -1]))
def test_predict_rejects_bad_input(trained, case, batch_size):
    _, _, X = case
    assert_rejected(trained, lambda: trained.predict(X, batch_size=batch_size))


@settings(max_examples=30, **SETTINGS)
@given(case=bad_targets())
def test_evaluate_rejects_bad_input(trained, case):
    _, X, y = case
    assert_rejected(trained, lambda: trained.evaluate(X, y))


@settings(max_examples=30, **SETTINGS)
@given(position=st.integers(0, 7), defect=st.sampled_from(["shape", "nan", "strings", "missing", "extra", "none"]))
def test_set_weights_rejects_bad_arrays(trained, position, defect):
    weights = trained.get_weights()
    position %= len(weights)
    if defect == "shape":
        weights[position] = np.ones(weights[position].shape + (2,))
    elif defect == "nan":
        weights[position] = np.full_like(weights[position], np.nan)
    elif defect == "strings":
        weights[position] = np.full(weights[position].shape, "w")
    elif defect == "missing":
        weights.pop(position)
    elif defect == "extra":
        weights.insert(position, np.zeros(3))
    else:
        weights = None
    assert_rejected(trained, lambda: trained.set_weights(weights))


@settings(max_examples=30, **SETTINGS)
@given(content=st.one_of(st.binary(max_size=300), st.just(b"PK\x03\x04" + b"\x00" * 40)))
def test_load_rejects_garbage_files(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("garbage") / "x.ncz"
    path.write_bytes(content)
    with pytest.raises(netcore.CheckpointError):
        netcore.load(path)


CLI_BAD = st.sampled_from(
    [
        ["train", "--csv", "missing.csv", "--target", "y"],
        ["train", "--device", "nonsense"],
        ["train", "--hidden", "0"],
        ["train", "--hidden", "a,b"],
        ["train", "--lr", "-1"],
        ["train", "--lr", "nan"],
        ["train", "--epochs", "-2"],
        ["train", "--batch-size", "0"],
        ["train", "--dropout", "1"],
        ["train", "--optimizer", "adamm", "--epochs", "1"],
        ["train", "--activation", "rleu", "--epochs", "1"],
        ["evaluate", "nope.ncz"],
        ["predict", "x.ncz", "--csv", "y"],
        ["train", "--dataset", "mnist"],
        ["train", "--mnist", "/nonexistent"],
        ["bench", "--repeats", "0"],
        [],
    ]
)


@settings(max_examples=20, **SETTINGS)
@given(args=CLI_BAD)
def test_cli_rejects_bad_arguments_with_status_2(capsys, args):
    try:
        status = cli_main(args)
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2, args
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
