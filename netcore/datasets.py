"""Real data sets that ship inside scikit-learn, split and standardised the same way every time (host side).

Nothing is downloaded: breast cancer, digits, iris and wine are bundled with scikit-learn, and moons, circles and
blobs are generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netcore._names import lookup


@dataclass
class Dataset:
    """A train/test split with standardisation fitted on the training part only."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    feature_mean: np.ndarray
    feature_std: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])


def _bundled(loader):
    def load(seed):
        bunch = loader()
        return bunch.data, bunch.target

    return load


def _generated(maker, **kwargs):
    def load(seed):
        return maker(n_samples=1000, random_state=seed, **kwargs)

    return load


def _sources():
    from sklearn import datasets as sk

    return {
        "breast_cancer": _bundled(sk.load_breast_cancer),
        "digits": _bundled(sk.load_digits),
        "iris": _bundled(sk.load_iris),
        "wine": _bundled(sk.load_wine),
        "moons": _generated(sk.make_moons, noise=0.2),
        "circles": _generated(sk.make_circles, noise=0.1, factor=0.5),
        "blobs": _generated(sk.make_blobs, centers=3, n_features=2),
    }


NAMES = ("breast_cancer", "digits", "iris", "wine", "moons", "circles", "blobs")


def standardize(X_train: np.ndarray, *others: np.ndarray):
    """Scale every column to mean 0 and std 1 using the training part's statistics (constant columns left as 0)."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean, std, [(X - mean) / std for X in (X_train, *others)]


def load(name: str, test_size: float = 0.2, seed: int = 0, dtype: str = "float32") -> Dataset:
    """Load ``name``, split it stratified into train/test with ``seed``, and standardise the features."""
    from sklearn.model_selection import train_test_split

    X, y = lookup("dataset", name, _sources())(seed)
    key = name.strip().lower().replace("-", "_")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    mean, std, (X_train, X_test) = standardize(X_train, X_test)
    return Dataset(key, X_train.astype(dtype), y_train, X_test.astype(dtype), y_test, int(y.max()) + 1, mean, std)


def one_hot(labels, n_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """Class indices as one-hot rows."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out
