"""predict's short path for an array the built model computes on as it is (a request served one row at a time): the
same outputs and the same refusals as the general preparation, taken only where nothing needs converting; and the
device scope entered and left around every public call, also when it fails."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Dense


def _model(device):
    return netcore.Sequential([Dense(8, "relu"), Dense(3, "softmax")], input_dim=4, device=device, seed=0)


def _rows(count: int = 5):
    return np.random.default_rng(0).standard_normal((count, 4)).astype("float32")


def test_ready_arrays_predict_what_the_general_path_predicts(backend):
    model = _model(backend.name)
    rows = _rows()
    expected = model.predict(rows.tolist())  # a list: converted, checked, the general path
    native = backend.asarray(rows)
    assert np.array_equal(model.predict(native), expected)
    assert np.array_equal(model.predict(native[:1]), expected[:1])
    assert np.array_equal(model.predict({model.input_names[0]: native}), expected)


def test_a_ready_array_holding_nan_is_refused_naming_its_row(backend):
    model = _model(backend.name)
    rows = _rows()
    rows[2, 1] = np.nan
    for X in (backend.asarray(rows), backend.asarray(rows[2:3])):
        with pytest.raises(netcore.ShapeError, match="X contains NaN or infinity"):
            model.predict(X)
    with pytest.raises(netcore.ShapeError, match="first in row 2"):
        model.predict(backend.asarray(rows))


def test_only_exactly_ready_arrays_skip_the_general_preparation(tmp_path, monkeypatch):
    model = _model("numpy")
    prepared = []
    general = model._prepare
    monkeypatch.setattr(model, "_prepare", lambda X, **options: prepared.append(X) or general(X, **options))
    rows = _rows()
    expected = model.predict(rows)
    assert prepared == []
    memmap = np.lib.format.open_memmap(tmp_path / "rows.npy", "w+", "float32", rows.shape)
    memmap[...] = rows
    others = [rows.astype("float64"), np.asfortranarray(rows), memmap, rows.tolist()]
    for other in others:
        assert np.array_equal(model.predict(other), expected)
    assert len(prepared) == len(others)
    with pytest.raises(netcore.ShapeError, match="X has 3 features but the first layer"):
        model.predict(rows[:, :3])


def test_unbuilt_and_multi_input_models_take_the_general_path():
    model = netcore.Sequential([Dense(3, "softmax")], device="numpy", seed=0)
    assert model.predict(_rows()).shape == (5, 3)  # built here, from the rows
    first, second = netcore.Input((4,), name="a"), netcore.Input((4,), name="b")
    joined = netcore.layers.Concatenate()([first, second])
    pair = netcore.Model([first, second], Dense(2)(joined), device="numpy", seed=0)
    assert pair._served_shape is None
    assert pair.predict([_rows(), _rows()]).shape == (5, 2)


class _RecordingScope:
    def __init__(self, log: list):
        self.log = log

    def __enter__(self):
        self.log.append("enter")

    def __exit__(self, kind, exc, traceback):
        self.log.append("exit" if exc is None else f"exit after {kind.__name__}")
        return False


def test_public_calls_enter_and_leave_the_device_scope_even_when_they_fail(monkeypatch):
    model = _model("numpy")
    model.compile("sgd", "cross_entropy")
    log: list = []
    monkeypatch.setattr(model.backend, "scope", lambda: _RecordingScope(log))
    rows = _rows()
    model.predict(rows)
    model.evaluate(rows, np.zeros(5, int))
    model.fit(rows, np.zeros(5, int), epochs=1, verbose=0)
    assert log == ["enter", "exit"] * 3
    log.clear()
    rows[3, 0] = np.inf
    with pytest.raises(netcore.ShapeError, match="first in row 3"):
        model.predict(rows)
    assert log == ["enter", "exit after ShapeError"]
