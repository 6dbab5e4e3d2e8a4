"""Data sets: bundled and generated sets, CSV files, MNIST's IDX format, splits and scaling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

import netcore
from netcore import datasets


@pytest.mark.parametrize("name", [name for name in datasets.NAMES if name not in datasets.SEQUENCES])
def test_every_named_table_loads_split_and_standardised(name):
    data = datasets.load(name, validation_size=0.1, seed=3)
    total = len(data.y_train) + len(data.y_val) + len(data.y_test)
    assert abs(len(data.y_test) / total - 0.2) < 0.01 and abs(len(data.y_val) / total - 0.1) < 0.01
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    assert data.X_train.dtype == np.float32 and data.n_classes == len(np.unique(data.y_train))
    # stratified: class shares agree between the parts
    share = lambda y: np.bincount(y, minlength=data.n_classes) / len(y)  # noqa: E731
    assert np.abs(share(data.y_train) - share(data.y_test)).max() < 0.05


def test_same_seed_same_split():
    a, b = datasets.load("wine", seed=5), datasets.load("wine", seed=5)
    np.testing.assert_array_equal(a.X_test, b.X_test)


def test_csv_classification_and_regression(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.csv"
    rows = ["a,b,label,value"] + [
        f"{x:.4f},{z:.4f},{'yes' if x > 0 else 'no'},{2 * x + z:.4f}" for x, z in rng.standard_normal((60, 2))
    ]
    path.write_text("\n".join(rows))
    classes = datasets.load_csv(path, "label")
    assert classes.task == "classification" and classes.classes == ["no", "yes"]
    assert classes.feature_names == ["a", "b", "value"]
    with pytest.raises(datasets.DataError, match="column 'label' is not numeric"):
        datasets.load_csv(path, "value")  # a text column cannot be a feature
    numeric = tmp_path / "n.csv"
    numeric.write_text("\n".join(line.rsplit(",", 2)[0] + "," + line.rsplit(",", 1)[1] for line in rows))
    regression = datasets.load_csv(numeric, "value", validation_size=0.2)
    assert regression.task == "regression" and regression.n_classes == 0 and regression.n_features == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n3", "line 3"),
        ("b,a\n1,x\n2,3", "not numeric"),
        ("a,b\n", "header row and at least"),
        ("a,b\n1,2\nnan,3\n4,5", "features contain NaN or infinity \\(first in row 1\\)"),
        ("a,b\n1,2\n2,inf\n4,5", "target column 'b' contains NaN or infinity \\(first in row 1\\)"),
    ],
)
def test_bad_csv_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(datasets.DataError, match=message):
        datasets.load_csv(path, "b")


def test_missing_csv_and_column(tmp_path):
    with pytest.raises(datasets.DataError, match="cannot read"):
        datasets.load_csv(tmp_path / "none.csv", "y")
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(datasets.DataError, match="no column 'y'"):
        datasets.load_csv(tmp_path / "d.csv", "y")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_idx_files(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 5)
    datasets.write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    datasets.write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), images)
    data = datasets.load_mnist(tmp_path)
    assert data.n_features == 784 and data.n_classes == 10 and len(data.y_train) == 40


def test_damaged_idx_files(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(datasets.DataError, match="promises 5"):
        datasets.read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"PK\x03\x04")
    with pytest.raises(datasets.DataError, match="magic"):
        datasets.read_idx(tmp_path / "y")
    with pytest.raises(datasets.DataError, match="never downloaded"):
        datasets.load_mnist(tmp_path)


def test_one_hot():
    np.testing.assert_array_equal(datasets.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])


def test_digits_as_images_are_channels_last_in_the_unit_range():
    tables, images = datasets.load("digits", seed=3), datasets.load("digits", seed=3, as_images=True)
    assert images.X_train.shape == (tables.X_train.shape[0], 8, 8, 1) and images.input_shape == (8, 8, 1)
    assert images.X_train.min() == 0 and images.X_train.max() == 1 and images.n_features == 64
    np.testing.assert_array_equal(images.y_test, tables.y_test)  # the same split
    raw = load_digits().data
    np.testing.assert_allclose(images.transform(raw[:3]), raw[:3].reshape(3, 8, 8, 1) / 16)
    with pytest.raises(netcore.ConfigurationError, match="iris is a table, not images"):
        datasets.load("iris", as_images=True)


def test_mnist_as_images(tmp_path):
    rng = np.random.default_rng(0)
    datasets.write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (50, 28, 28)).astype(np.uint8))
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte", (np.arange(50) % 10).astype(np.uint8))
    data = datasets.load_mnist(tmp_path, as_images=True)
    assert data.X_train.shape == (40, 28, 28, 1) and data.X_train.min() >= 0 and data.X_train.max() <= 1


def test_digits_as_sequences_read_each_image_row_by_row():
    tables, sequences = datasets.load("digits", seed=2), datasets.load("digits", seed=2, as_sequences=True)
    assert sequences.X_train.shape == (tables.X_train.shape[0], 8, 8) and sequences.input_shape == (8, 8)
    np.testing.assert_array_equal(sequences.X_train.reshape(len(sequences.X_train), -1), tables.X_train)
    with pytest.raises(netcore.ConfigurationError, match="exclude each other"):
        datasets.load("digits", as_images=True, as_sequences=True)


def test_noisy_sines_to_forecast():
    data = datasets.load("sine", seed=1, length=20, samples=300)
    assert data.X_train.shape == (240, 20, 1) and data.task == "regression" and data.y_train.shape == (240,)
    X, y = datasets.sine_waves(samples=50, length=30, noise=0.0, seed=4)
    assert X.shape == (50, 30, 1) and np.abs(X).max() <= 1.5
    # a noiseless sine satisfies x[t+1] = 2 cos(w) x[t] - x[t-1]; the target continues it
    ratio = (X[:, 2, 0] + X[:, 0, 0]) / X[:, 1, 0]
    np.testing.assert_allclose(y, ratio * X[:, -1, 0] - X[:, -2, 0], atol=1e-9)


def test_the_adding_problem():
    X, y = datasets.adding_problem(samples=200, length=40, seed=0)
    marks = X[..., 1]
    assert X.shape == (200, 40, 2) and (marks.sum(axis=1) == 2).all()
    assert (marks[:, :20].sum(axis=1) == 1).all() and (marks[:, 20:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y, (X[..., 0] * marks).sum(axis=1))
    assert abs(((y - 1) ** 2).mean() - 1 / 6) < 0.03  # the MSE of always guessing 1
    data = datasets.load("adding", length=50)
    assert data.input_shape == (50, 2) and len(data.y_train) == 3200
    with pytest.raises(netcore.ConfigurationError, match="length and samples choose the generated sequences"):
        datasets.load("iris", length=10)
