"""Real data, host side: scikit-learn's bundled sets, generated 2-D problems, CSV files and MNIST-style IDX files,
split (stratified for classification) and standardised the same way every time. Nothing is downloaded.

``load("digits")`` gives a :class:`Dataset` with train/test parts (and validation when ``validation_size > 0``),
features standardised with statistics of the training part only. ``load("digits", as_images=True)`` and
``load_mnist(folder, as_images=True)`` give channels-last images ``(n, height, width, 1)`` with pixels scaled to
[0, 1] instead, ``load("digits", as_sequences=True)`` each digit read row by row, ``(n, 8, 8)``, standardised.
Two generated sequence sets: ``"sine"`` (noisy sines, forecast the next value) and ``"adding"`` (the adding
problem).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from netcore._names import lookup
from netcore.errors import ConfigurationError, DataError, ShapeError

NAMES = ("breast_cancer", "digits", "iris", "wine", "moons", "circles", "blobs", "sine", "adding")


@dataclass
class Dataset:
    """Train/validation/test parts, standardised with the training part's statistics."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int  # 0 for regression
    feature_mean: np.ndarray
    feature_std: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    classes: list = field(default_factory=list)  # original labels of class indices 0..n_classes-1
    feature_names: list = field(default_factory=list)

    @property
    def n_features(self) -> int:
        """Values per sample (pixels x channels for images)."""
        return int(np.prod(self.X_train.shape[1:]))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """A sample's shape: ``(features,)`` for tables, ``(height, width, channels)`` for images."""
        return tuple(self.X_train.shape[1:])

    @property
    def task(self) -> str:
        return "classification" if self.n_classes else "regression"

    def transform(self, X) -> np.ndarray:
        """Scale new rows as the training part was (flat rows of pixels come back as images)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.n_features)
        scaled = ((X - self.feature_mean) / self.feature_std).astype(self.X_train.dtype)
        return scaled.reshape(-1, *self.input_shape)


# ----------------------------------------------------------------------------------------------- sources
def _bundled(loader):
    def load(seed):
        bunch = loader()
        return bunch.data, bunch.target, list(bunch.feature_names) if hasattr(bunch, "feature_names") else []

    return load


def _generated(maker, **kwargs):
    def load(seed):
        X, y = maker(n_samples=1000, random_state=seed, **kwargs)
        return X, y, ["x0", "x1"]

    return load


def sine_waves(samples: int = 1000, length: int = 50, noise: float = 0.1, seed: int = 0):
    """Noisy sines of random frequency, amplitude and phase, ``(samples, length, 1)``; the target is the next value
    of the clean wave (one step to forecast)."""
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(0.05, 0.25, (samples, 1)) * 2 * np.pi
    amplitude = rng.uniform(0.5, 1.5, (samples, 1))
    phase = rng.uniform(0, 2 * np.pi, (samples, 1))
    steps = np.arange(length + 1)[None, :]
    clean = amplitude * np.sin(frequency * steps + phase)
    X = clean[:, :length] + noise * rng.standard_normal((samples, length))
    return X[..., None], clean[:, length]


def adding_problem(samples: int = 4000, length: int = 50, seed: int = 0):
    """The adding problem (Hochreiter and Schmidhuber): each step holds a value from U(0, 1) and a marker; exactly
    two steps are marked, one in each half; the target is the sum of the two marked values. Guessing 1 scores a
    mean squared error of 1/6; a network must carry the first value across about half the sequence."""
    if length < 2:
        raise ConfigurationError(f"the adding problem needs length >= 2, got {length}")
    rng = np.random.default_rng(seed)
    values = rng.random((samples, length))
    rows = np.arange(samples)
    first, second = rng.integers(0, length // 2, samples), rng.integers(length // 2, length, samples)
    marks = np.zeros((samples, length))
    marks[rows, first] = marks[rows, second] = 1
    return np.stack([values, marks], axis=-1), values[rows, first] + values[rows, second]


def _sequences(maker):
    def load(seed, **options):
        X, y = maker(seed=seed, **options)
        return X, y, []

    return load


#: Sequence data sets among :data:`NAMES`, with the task of their targets.
SEQUENCES = {"sine": "regression", "adding": "regression"}


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
        "sine": _sequences(sine_waves),
        "adding": _sequences(adding_problem),
    }


# ----------------------------------------------------------------------------------------------- splitting
def standardize(X_train: np.ndarray, *others: np.ndarray):
    """Scale every column to mean 0 and std 1 using the training part's statistics (constant columns left as 0)."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean, std, [(X - mean) / std for X in (X_train, *others)]


def split(X, y, test_size: float = 0.2, validation_size: float = 0.0, seed: int = 0, stratify: bool = True):
    """Train/validation/test parts; stratified by ``y`` for classification. Sizes are fractions of all rows."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1 or not 0 <= validation_size < 1 or test_size + validation_size >= 1:
        raise ConfigurationError(
            f"test_size and validation_size must be fractions summing below 1, got {test_size} and {validation_size}"
        )
    strata = y if stratify else None
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=test_size, stratify=strata, random_state=seed)
    if not validation_size:
        return X_rest, y_rest, None, None, X_test, y_test
    share = validation_size / (1 - test_size)
    strata = y_rest if stratify else None
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=share, stratify=strata, random_state=seed
    )
    return X_train, y_train, X_val, y_val, X_test, y_test


def prepare(
    name,
    X,
    y,
    task: str,
    test_size=0.2,
    validation_size=0.0,
    seed=0,
    dtype="float32",
    feature_names=(),
    sample_shape: tuple[int, ...] | None = None,
    scale: float | None = None,
):
    """Encode labels, split and standardise: the shared last step of every loader. With ``scale``, the flat rows
    are divided by it (pixels to [0, 1]) rather than standardised; with ``sample_shape`` (images, sequences), they
    are shaped as samples at the end."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ShapeError(f"{name}: need a 2-D table with at least 2 rows, got shape {X.shape}")
    if not np.isfinite(X).all():
        row = int(np.argwhere(~np.isfinite(X))[0][0])
        raise DataError(f"{name}: features contain NaN or infinity (first in row {row})")
    classes = []
    if task == "classification":
        classes, y = np.unique(np.asarray(y), return_inverse=True)
        classes = classes.tolist()
        y = y.astype(np.int64)
    else:
        y = np.asarray(y, dtype=np.float64).astype(dtype)
    parts = split(X, y, test_size, validation_size, seed, stratify=task == "classification")
    X_train, y_train, X_val, y_val, X_test, y_test = parts
    others = (X_test, *(() if X_val is None else (X_val,)))
    if scale is None:
        mean, std, scaled = standardize(X_train, *others)
    else:
        mean, std = np.zeros(X.shape[1]), np.full(X.shape[1], float(scale))
        scaled = [part / scale for part in (X_train, *others)]
    if sample_shape is not None:
        scaled = [part.reshape(-1, *sample_shape) for part in scaled]
    return Dataset(
        name,
        scaled[0].astype(dtype),
        y_train,
        scaled[1].astype(dtype),
        y_test,
        len(classes),
        mean,
        std,
        None if X_val is None else scaled[2].astype(dtype),
        y_val,
        classes,
        list(feature_names),
    )


#: Image data sets among :data:`NAMES`: their shape and the largest pixel value.
IMAGES = {"digits": ((8, 8, 1), 16.0)}


def load(
    name: str,
    test_size: float = 0.2,
    validation_size: float = 0.0,
    seed: int = 0,
    dtype: str = "float32",
    as_images: bool = False,
    as_sequences: bool = False,
    length: int | None = None,
    samples: int | None = None,
) -> Dataset:
    """A bundled or generated data set by name (see :data:`NAMES`), split and standardised.

    ``as_images``: an image data set (``digits``: ``(n, 8, 8, 1)``) with pixels scaled to [0, 1];
    ``as_sequences``: its rows as time steps (``digits``: ``(n, 8, 8)``, each pixel standardised). The generated
    sequence sets (``sine``, ``adding``) are ``(samples, length, features)`` as generated, with ``length`` and
    ``samples`` to choose (defaults: 50 steps; 1,000 and 4,000 sequences)."""
    key = name.strip().lower().replace("-", "_")
    source = lookup("dataset", name, _sources())
    if key in SEQUENCES:
        options = {k: v for k, v in (("length", length), ("samples", samples)) if v is not None}
        X, y, features = source(seed, **options)
        shape = X.shape[1:]
        flat = X.reshape(len(X), -1)
        return prepare(key, flat, y, SEQUENCES[key], test_size, validation_size, seed, dtype, features, shape, 1.0)
    if length is not None or samples is not None:
        raise ConfigurationError(
            f"length and samples choose the generated sequences ({', '.join(SEQUENCES)}), not {key}"
        )
    X, y, features = source(seed)
    if as_images and as_sequences:
        raise ConfigurationError("as_images and as_sequences exclude each other")
    if not (as_images or as_sequences):
        return prepare(key, X, y, "classification", test_size, validation_size, seed, dtype, features)
    if key not in IMAGES:
        kind = "images" if as_images else "sequences"
        raise ConfigurationError(f"{key} is a table, not {kind}; as_{kind} applies to {', '.join(IMAGES)}")
    shape, scale = IMAGES[key]
    if as_sequences:  # rows as time steps, a row's pixels (standardised, as a table's) as features
        shape, scale = shape[:-1], None
    return prepare(key, X, y, "classification", test_size, validation_size, seed, dtype, features, shape, scale)


# ----------------------------------------------------------------------------------------------- .npy
def load_npy(features, labels, test_size: float = 0.2, task: str | None = None) -> Dataset:
    """Features memory-mapped from a ``.npy`` file, labels from another: ``fit`` reads the features a block at a
    time, so the file may be larger than memory. The last ``test_size`` of the rows are the test split (rows in the
    file's order: shuffle the file first if it is sorted), and features are used as stored, not standardised (that
    would copy them). Integer labels are classes (``task`` overrides), anything else regression targets."""
    name = os.path.splitext(os.path.basename(str(features)))[0]
    try:
        X = np.load(features, mmap_mode="r")
        y = np.load(labels)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {features} and {labels} as .npy files: {exc}") from None
    if X.ndim < 2 or len(X) < 2:
        raise ShapeError(f"{features}: need at least 2 rows of features, got shape {X.shape}")
    if y.shape[:1] != X.shape[:1]:
        raise ShapeError(f"{features} has {len(X)} rows but {labels} has {len(y)}")
    if not 0 < test_size < 1:
        raise ConfigurationError(f"test_size must be a fraction in (0, 1), got {test_size}")
    task = task or ("classification" if y.dtype.kind in "iub" else "regression")
    classes = []
    if task == "classification":
        classes, y = np.unique(y, return_inverse=True)
        classes, y = classes.tolist(), y.astype(np.int64)
    cut = len(X) - max(1, int(round(len(X) * test_size)))
    width = int(np.prod(X.shape[1:]))
    return Dataset(
        name, X[:cut], y[:cut], X[cut:], y[cut:], len(classes), np.zeros(width), np.ones(width), classes=classes
    )


# ----------------------------------------------------------------------------------------------- CSV
def load_csv(
    path,
    target: str,
    task: str = "auto",
    test_size: float = 0.2,
    validation_size: float = 0.0,
    seed: int = 0,
    dtype: str = "float32",
) -> Dataset:
    """A CSV file with a header row; ``target`` names the label column, every other column must be numeric.

    ``task="auto"`` treats the target as classes when it is text or integral with at most 50 distinct values.
    """
    header, columns = read_csv_columns(path)
    if target not in header:
        raise DataError(f"{path}: no column {target!r} (columns: {', '.join(header)})")
    features = [h for h in header if h != target]
    if not features:
        raise DataError(f"{path}: no feature columns besides {target!r}")
    X = np.column_stack([_numeric(path, name, columns[name]) for name in features])
    raw_target = columns[target]
    numeric_target = [float(c) for c in raw_target if _is_float(c)]
    if not np.isfinite(numeric_target).all():
        row = next(i for i, c in enumerate(raw_target) if _is_float(c) and not np.isfinite(float(c)))
        raise DataError(f"{path}: target column {target!r} contains NaN or infinity (first in row {row})")
    if task == "auto":
        task = _guess_task(raw_target)
    if task not in ("classification", "regression"):
        raise ConfigurationError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    y = _labels(raw_target) if task == "classification" else _numeric(path, target, raw_target)
    return prepare(os.path.basename(str(path)), X, y, task, test_size, validation_size, seed, dtype, features)


def read_csv_columns(path) -> tuple[list[str], dict[str, list[str]]]:
    """The header and each column's cells as text."""
    import csv

    try:
        with open(path, newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV file {path}: {exc}") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {number} has {len(row)} fields, the header has {len(header)}")
    return header, {name: [row[i].strip() for row in rows[1:]] for i, name in enumerate(header)}


def _numeric(path, name, cells) -> np.ndarray:
    try:
        return np.array([float(c) for c in cells])
    except ValueError:
        bad = next(c for c in cells if not _is_float(c))
        raise DataError(f"{path}: column {name!r} is not numeric (found {bad!r})") from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _labels(cells):
    """Integral numbers as numbers (so classes sort numerically), anything else as text."""
    if all(_is_float(c) and float(c).is_integer() for c in cells):
        return np.array([int(float(c)) for c in cells])
    return np.array(cells)


def _guess_task(cells) -> str:
    if not all(_is_float(c) for c in cells):
        return "classification"
    values = np.array([float(c) for c in cells])
    integral = np.all(values == np.round(values))
    return "classification" if integral and len(np.unique(values)) <= 50 else "regression"


# ----------------------------------------------------------------------------------------------- IDX (MNIST)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An array from an IDX file (MNIST's format), plain or gzip-compressed."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataError(f"{path}: IDX body has {len(body)} bytes, its header promises {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write an array as an IDX file (for tests and for exporting data in MNIST's format)."""
    array = np.asarray(array)
    code = {
        np.dtype(np.uint8): 0x08,
        np.dtype(np.int8): 0x09,
        np.dtype(np.int16): 0x0B,
        np.dtype(np.int32): 0x0C,
        np.dtype(np.float32): 0x0D,
        np.dtype(np.float64): 0x0E,
    }[array.dtype]
    big = array.astype(np.dtype(_IDX_TYPES[code]))
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + big.tobytes())


def load_mnist(
    directory,
    test_size: float = 0.2,
    validation_size: float = 0.0,
    seed: int = 0,
    dtype: str = "float32",
    limit: int | None = None,
    as_images: bool = False,
) -> Dataset:
    """MNIST-style IDX files from a local folder (``train-images-idx3-ubyte[.gz]`` and
    ``train-labels-idx1-ubyte[.gz]``), pixels scaled to [0, 1] and flattened, then split and standardised; with
    ``as_images``, split and kept as ``(n, height, width, 1)`` images in [0, 1]."""
    images = _find(directory, "train-images-idx3-ubyte")
    labels = _find(directory, "train-labels-idx1-ubyte")
    X, y = read_idx(images), read_idx(labels)
    if X.shape[0] != y.shape[0]:
        raise DataError(f"{directory}: {X.shape[0]} images but {y.shape[0]} labels")
    if limit:
        X, y = X[:limit], y[:limit]
    if as_images:
        if X.ndim != 3:
            raise DataError(f"{images}: images of shape {X.shape[1:]}, expected (height, width)")
        shape = (*X.shape[1:], 1)
        flat = X.reshape(X.shape[0], -1)
        return prepare("mnist", flat, y, "classification", test_size, validation_size, seed, dtype, (), shape, 255.0)
    X = X.reshape(X.shape[0], -1) / 255.0
    return prepare("mnist", X, y, "classification", test_size, validation_size, seed, dtype)


def _find(directory, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise DataError(f"{directory}: no {stem}[.gz] file (MNIST is read from local files, never downloaded)")


def one_hot(labels, n_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """Class indices as one-hot rows (:func:`netcore.utils.to_categorical`)."""
    from netcore.utils import to_categorical

    return to_categorical(labels, n_classes, dtype)
