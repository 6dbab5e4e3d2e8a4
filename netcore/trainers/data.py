"""What users pass to ``fit``, ``evaluate`` and ``predict``, as checked device arrays: one per model input and one
per output. Data for several inputs (or outputs) comes as a list in the model's order or a dict keyed by their
names; a model with one takes the array itself. Every check runs before anything changes (see
:mod:`netcore.validation`)."""

from __future__ import annotations

from netcore import streaming, validation
from netcore.errors import ConfigurationError, ShapeError


class DefaultBatchSize(int):
    """``fit``'s default batch size, 32, which a data set's own ``batch_size`` replaces (a value given is kept)."""

    def __repr__(self) -> str:
        return "32"


DEFAULT_BATCH_SIZE = DefaultBatchSize(32)


def check_positive_int(name: str, value, allow_none: bool = False) -> None:
    """Refuse anything but a positive ``int`` (a bool is not one), and ``None`` unless allowed."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        extra = " or None" if allow_none else ""
        raise ConfigurationError(f"{name} must be a positive integer{extra}, got {value!r}")


def is_data_set(value) -> bool:
    """A data set carries inputs and targets together (``image_dataset_from_directory``'s): ``features`` and
    ``targets``. An array (it has a shape) is not one: asked first, that spares every predict the exception a
    missing attribute raises inside ``hasattr``."""
    return not hasattr(value, "shape") and hasattr(value, "features") and hasattr(value, "targets")


def unpack(X, y):
    """``(X, y)``, taken from a data set when ``X`` is one."""
    if not is_data_set(X):
        return X, y
    if y is not None:
        raise ConfigurationError("a data set carries its own targets: pass it without y")
    return X.features, X.targets


def by_name(value, names: list[str], what: str, kind: str) -> list:
    """``value`` as one entry per name: a dict keyed by the names, a list in their order, or (for one name) the
    value itself or a list holding it."""
    if isinstance(value, dict):
        unknown = [key for key in value if key not in names]
        missing = [name for name in names if name not in value]
        if unknown or missing:
            problem = f"has the unknown key(s) {unknown}" if unknown else f"has no entry for {missing}"
            raise ShapeError(f"{what} {problem}; the model's {kind} are {names}")
        return [value[name] for name in names]
    if len(names) == 1:
        if isinstance(value, (list, tuple)) and len(value) == 1 and hasattr(value[0], "shape"):
            return [value[0]]
        return [value]
    if not isinstance(value, (list, tuple)) or not all(_is_array(v) for v in value):
        raise ShapeError(
            f"the model has {len(names)} {kind} ({', '.join(names)}): pass {what} as a list of {len(names)} arrays or "
            "a dict keyed by those names"
        )
    if len(value) != len(names):
        raise ShapeError(f"{what} holds {len(value)} arrays but the model's {kind} are {len(names)}: {names}")
    return list(value)


def _is_array(value) -> bool:
    return hasattr(value, "shape") or isinstance(value, (list, tuple))


def inputs(model, X, names: list[str], shapes: list | None, receivers: list[str], stream: bool) -> list:
    """One checked device array (or :class:`~netcore.streaming.StreamedRows`) per input; ``shapes`` are the
    expected sample shapes (None before a Sequential model is built)."""
    if X is None:
        raise ShapeError("X is required")
    sources = by_name(X, names, "X", "inputs")
    several = len(names) > 1
    arrays = []
    for k, source in enumerate(sources):
        what = f"X[{names[k]!r}]" if several else "X"
        expected = None if shapes is None else tuple(shapes[k])
        array = validation.features(model, source, what, expected, receivers[k])
        if streaming.is_streamed(array) and not stream:
            array = array.read(0, len(array))
        arrays.append(array)
    if several and len({array.shape[0] for array in arrays}) > 1:
        counts = ", ".join(f"{name}: {array.shape[0]}" for name, array in zip(names, arrays, strict=True))
        raise ShapeError(f"the inputs have different numbers of rows ({counts})")
    return arrays


def targets(model, heads, y, n_rows: int, names: list[str], shapes: list) -> list:
    """One target array per output, prepared for that output's loss."""
    if y is None:
        raise ShapeError("y is required")
    values = by_name(y, names, "y", "outputs")
    several = len(names) > 1
    return [
        validation.targets(model, head.loss, value, n_rows, tuple(shape), f"y[{name!r}]" if several else "y")
        for head, value, name, shape in zip(heads, values, names, shapes, strict=True)
    ]


def weights(model, Y: list, n_rows: int, shapes: list, class_weight, sample_weight):
    """Per-sample (or per-step) weights from ``sample_weight`` and ``class_weight``, or None."""
    if class_weight is not None and len(Y) > 1:
        raise ConfigurationError("class_weight applies to models with one output; weight rows with sample_weight")
    return validation.sample_weights(model, Y[0], n_rows, shapes[0][-1], class_weight, sample_weight)
