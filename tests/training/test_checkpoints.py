"""Checkpoints: exact resume, loading onto another backend, and rejection of damaged files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import netcore
from netcore import callbacks
from netcore.layers import BatchNorm, Dense, Dropout
from tests.conftest import require


def make(device, optimizer=None):
    m = netcore.Sequential(
        [Dense(16, use_bias=False), BatchNorm(), netcore.layers.Activation("relu"), Dropout(0.2), Dense(3, "softmax")],
        input_dim=5,
        device=device,
        seed=7,
    )
    m.compile(
        optimizer or netcore.optimizers.NAdam(lr=5e-3),
        "cross_entropy",
        ["accuracy"],
        schedule=netcore.schedules.StepLR(3, 0.7),
    )
    return m


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 5)).astype("float32")
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)


@pytest.mark.parametrize("device", ["numpy", "numba", "cupy-on-cpu"])
@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: netcore.optimizers.NAdam(lr=5e-3),
        lambda: netcore.optimizers.SGD(lr=0.05, momentum=0.9),
        lambda: netcore.optimizers.Adam(lr=1e-2, amsgrad=True),
    ],
)
def test_ten_epochs_equal_five_saved_loaded_and_five_more(tmp_path, device, optimizer):
    if device != "cupy-on-cpu":
        require(device)
        return _check_exact_resume(tmp_path, device, optimizer)
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu  # the CuPy backend's code: device RNG, counters

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    with cupy_on_cpu():
        _check_exact_resume(tmp_path, "cupy", optimizer)


def _check_exact_resume(tmp_path, device, optimizer):
    X, y = data()
    straight = make(device, optimizer())
    straight.fit(
        X,
        y,
        epochs=10,
        batch_size=16,
        validation_split=0.2,
        verbose=0,
        callbacks=[callbacks.EarlyStopping(patience=50)],
    )
    first = make(device, optimizer())
    first.fit(
        X, y, epochs=5, batch_size=16, validation_split=0.2, verbose=0, callbacks=[callbacks.EarlyStopping(patience=50)]
    )
    first.save(tmp_path / "half.ncz")
    resumed = netcore.load(tmp_path / "half.ncz")
    assert resumed.epochs_trained == 5 and resumed.optimizer.step_count == first.optimizer.step_count
    resumed.fit(
        X, y, epochs=5, batch_size=16, validation_split=0.2, verbose=0, callbacks=[callbacks.EarlyStopping(patience=50)]
    )
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert straight.optimizer.lr == resumed.optimizer.lr


def test_callback_state_travels_in_checkpoints(tmp_path):
    X, y = data()
    m = make("numpy")
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=100)
    saver = callbacks.ModelCheckpoint(str(tmp_path / "c.ncz"))
    m.fit(X, y, epochs=4, batch_size=32, validation_split=0.2, callbacks=[stopper, saver], verbose=0)
    again = callbacks.EarlyStopping(monitor="val_loss", patience=100)
    loaded = netcore.load(tmp_path / "c.ncz")
    loaded.fit(X, y, epochs=0, validation_split=0.2, callbacks=[again], verbose=0)
    assert again.best == stopper.best and again.best_epoch == stopper.best_epoch
    for a, b in zip(again.best_weights, stopper.best_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_saved_on_one_backend_predicts_identically_on_another(tmp_path, backend):
    X, y = data()
    m = make("numpy")
    m.fit(X, y, epochs=3, batch_size=16, verbose=0)
    m.save(tmp_path / "m.ncz")
    moved = netcore.load(tmp_path / "m.ncz", device=backend.name)
    assert moved.device == backend.name
    np.testing.assert_allclose(moved.predict(X), m.predict(X), rtol=1e-5, atol=1e-6)
    assert moved.evaluate(X, y, return_dict=True)["accuracy"] == m.evaluate(X, y, return_dict=True)["accuracy"]


def test_the_file_is_a_manifest_plus_npy_arrays(tmp_path):
    m = make("numpy")
    m.save(tmp_path / "m.ncz")
    with zipfile.ZipFile(tmp_path / "m.ncz") as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
    assert names[:2] == ["manifest.json", "manifest.sha256"] and all(n.endswith(".npy") for n in names[2:])
    assert manifest["format"] == "netcore-checkpoint" and manifest["dtype"] == "float32"
    assert all(len(spec["sha256"]) == 64 for spec in manifest["arrays"].values())
    assert [layer["class"] for layer in manifest["layers"]] == ["Dense", "BatchNorm", "Activation", "Dropout", "Dense"]


def test_damaged_files_are_rejected(tmp_path):
    m = make("numpy")
    path = tmp_path / "m.ncz"
    m.save(path)
    blob = bytearray(path.read_bytes())
    cases = {
        "truncated": bytes(blob[: len(blob) // 2]),
        "not a zip": b"hello world",
        "empty": b"",
    }
    # A flipped byte inside the stored parameter array: the zip still opens, the checksum catches it.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("arrays/params.npy")
    flipped = bytearray(blob)
    flipped[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    cases["flipped byte"] = bytes(flipped)
    for name, content in cases.items():
        bad = tmp_path / f"{name}.ncz"
        bad.write_bytes(content)
        with pytest.raises(netcore.CheckpointError):
            netcore.load(bad)
    with pytest.raises(netcore.CheckpointError, match="no such"):
        netcore.load(tmp_path / "missing.ncz")


def test_saving_is_atomic(tmp_path, monkeypatch):
    m = make("numpy")
    path = tmp_path / "m.ncz"
    m.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        make("numpy").save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ncz"]


def test_an_image_model_round_trips_with_its_shapes(tmp_path):
    from netcore.layers import Conv2D, Flatten, MaxPooling2D

    model = netcore.Sequential(
        [Conv2D(3, 3, padding="same", activation="relu"), MaxPooling2D(2), Flatten(), Dense(2, "softmax")],
        input_shape=(6, 4, 2),
        device="numpy",
        seed=0,
    )
    model.compile("adam", "cross_entropy")
    X = np.random.default_rng(0).random((10, 6, 4, 2)).astype("float32")
    model.fit(X, np.arange(10) % 2, epochs=1, verbose=0)
    model.save(tmp_path / "image.ncz")
    np.testing.assert_array_equal(netcore.load(tmp_path / "image.ncz", device="numpy").predict(X), model.predict(X))
    loaded = netcore.load(tmp_path / "image.ncz", device="numba")  # compiled kernels: within float32's rounding
    assert loaded.input_shape == (6, 4, 2) and loaded.output_shape == (2,)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6, atol=1e-7)
    assert "(None, 3, 2, 3)" in loaded.summary(print_fn=None)


def test_a_checkpoint_of_the_dense_only_release_still_loads():
    """Written by netcore 0.1.0 before layers had shapes (its manifest has input_dim only)."""
    folder = Path(__file__).parent / "data"
    model = netcore.load(folder / "release-0.1.0-iris.ncz")
    assert model.input_shape == (4,) and model.epochs_trained == 3
    data = netcore.datasets.load("iris", seed=0)
    expected = np.load(folder / "release-0.1.0-iris-predictions.npy")
    np.testing.assert_allclose(model.predict(data.X_test), expected, rtol=1e-6)
    model.fit(data.X_train, data.y_train, epochs=1, verbose=0)  # its optimizer state resumes too
