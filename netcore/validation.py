"""Checks at the public boundaries (fit, evaluate, predict, train_on_batch), done once per call and before any
state changes, so a bad input raises a :class:`~netcore.errors.NetcoreError` that says what was expected and what
came, and the model stays exactly as it was. The hot loops do no checking."""

from __future__ import annotations

import math

from netcore.errors import DeviceError, DTypeError, ShapeError
from netcore.streaming import StreamedRows, check_protocol, first_bad_row

#: dtype kinds that are not numbers: object, bytes, str, void, datetime, timedelta, complex.
_NOT_REAL = set("OSUVMmc")


def _native(model, data, what: str, receiver: str = "the model"):
    """``data`` as an array of the model's backend: an array of another library on the model's device is viewed
    through DLPack, host data is copied in; another device's array is refused unless the model has
    ``auto_transfer=True``."""
    backend = model.backend
    if backend.is_native(data):  # the common case first: a predict on one row pays for every call
        other = backend.device_of(data)
        if other is None:
            return data
    else:
        view = backend.from_dlpack(data)
        if view is not None:
            return view
        other = backend.foreign_device(data)
        if other is None:
            return data
    if not model.auto_transfer:
        raise DeviceError(
            f"{what} lives on {other} but {receiver} is on {model.device}; "
            "move it, or create the model with auto_transfer=True to copy it"
        )
    return backend.from_foreign(data)


def _dtype_kind(data):
    dtype = getattr(data, "dtype", None)
    return getattr(dtype, "kind", None)


def features(model, X, what: str = "X", expected=None, receiver: str = "the model"):
    """``X`` as a finite array of the model's device and dtype, one sample per row of its first axis, each of the
    ``expected`` shape (None: any; a 1-D ``X`` is one feature per row). ``receiver`` names who takes it in errors
    ("the first layer (dense)", "input 'image'"). A memmap or another array-like that is not in memory comes back as
    :class:`~netcore.streaming.StreamedRows`: its values are checked as they are read."""
    backend = model.backend
    if ready(backend, X, model.dtype, expected):
        return finite(backend, X, what)
    if backend.is_streamable(X):
        return _streamed_features(model, X, what, expected, receiver)
    X = _native(model, X, what, f"{receiver} of the model")
    if _dtype_kind(X) in _NOT_REAL:
        raise DTypeError(f"{what} must hold real numbers, got dtype {X.dtype}")
    try:
        X = backend.asarray(X, model.dtype)
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: a tensor that requires grad, say
        raise DTypeError(f"{what} must be numeric, convertible to {model.dtype_name}: {exc}") from None
    one_sample = expected is not None and expected != (1,) and tuple(X.shape) == expected
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim < 2:
        raise ShapeError(f"{what} must have a sample axis and a feature axis, got shape {tuple(X.shape)}")
    if X.size == 0:
        raise ShapeError(f"{what} is empty (shape {tuple(X.shape)})")
    if expected is not None and tuple(X.shape[1:]) != expected:
        raise ShapeError(_shape_mismatch(X, expected, what, receiver, one_sample))
    return finite(backend, X, what)


def finite(backend, X, what: str):
    """``X``, once known to hold no NaN or infinity."""
    if not backend.all_finite(X):
        raise ShapeError(f"{what} contains NaN or infinity (first in row {first_bad_row(backend, X)})")
    return X


def ready(backend, X, dtype, expected) -> bool:
    """Whether ``X`` is already what the model computes on: a C-contiguous array of its backend (the array type
    itself: a subclass such as a memmap or a masked array takes the general path), device and dtype, of rows of the
    ``expected`` shape (a predict serving one request then checks only its values)."""
    return (
        expected is not None
        and type(X) is backend.xp.ndarray
        and X.dtype == dtype
        and X.shape[1:] == expected
        and X.shape[0] > 0
        and X.flags.c_contiguous
        and backend.device_of(X) is None
    )


def _streamed_features(model, X, what: str, expected, receiver: str):
    check_protocol(X, what)
    if X.dtype.kind in _NOT_REAL:
        raise DTypeError(f"{what} must hold real numbers, got dtype {X.dtype}")
    rows = StreamedRows(model, X, what)
    if len(rows) == 0 or 0 in rows.shape:
        raise ShapeError(f"{what} is empty (shape {tuple(X.shape)})")
    if expected is not None and tuple(rows.shape[1:]) != expected:
        raise ShapeError(_shape_mismatch(rows, expected, what, receiver, False))
    return rows


def _shape_mismatch(X, expected, what, receiver, one_sample) -> str:
    """Both shapes, who expects them, and the reshape that fixes it when the sizes agree."""
    got = tuple(X.shape[1:])
    if len(expected) == 1 and len(got) == 1:
        hint = f"; a single sample is {what}.reshape(1, -1)" if one_sample else ""
        return f"{what} has {got[0]} features but {receiver} expects {expected[0]}{hint}"
    message = (
        f"{what} has samples of shape {got} (array shape {tuple(X.shape)}) but {receiver} expects "
        f"samples of shape {expected}"
    )
    if one_sample:
        return message + f"; a single sample is {what}[None]"
    if math.prod(got) == math.prod(expected):
        return message + f"; reshape with {what}.reshape(-1, {', '.join(map(str, expected))})"
    if len(got) == len(expected) and got[:-1] == expected[:-1]:
        return message + f" ({got[-1]} channels instead of {expected[-1]})"
    return message


def targets(model, loss, y, n_rows: int, output_shape: tuple[int, ...], what: str = "y"):
    """Targets prepared for ``loss``, one entry per sample: int64 class indices, or finite float arrays shaped like
    the output (of sample shape ``output_shape``). An output with more axes than one (a sequence, an image) is scored
    per step or pixel over its last axis (Keras's rule): class indices then have the output's shape without its last
    axis."""
    backend = model.backend
    n_outputs = output_shape[-1]
    if y is None:
        raise ShapeError(f"{what} is required")
    y = _native(model, y, what)
    if _dtype_kind(y) in _NOT_REAL:
        raise DTypeError(f"{what} must hold numbers, got dtype {y.dtype}")
    try:
        y = backend.asarray(y)
    except (TypeError, ValueError) as exc:
        raise DTypeError(f"{what} must be numeric: {exc}") from None
    if y.dtype.kind in _NOT_REAL:
        raise DTypeError(f"{what} must hold numbers, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n_rows:
        raise ShapeError(f"X has {n_rows} rows but {what} has {0 if y.ndim == 0 else y.shape[0]}")
    if y.dtype.kind == "f" and not backend.all_finite(y):
        raise ShapeError(f"{what} contains NaN or infinity (first in row {first_bad_row(backend, y)})")
    steps = tuple(output_shape[:-1])  # the output's axes besides its last, per sample
    if loss.class_index_targets(n_outputs) and tuple(y.shape[1:]) == steps:
        if y.dtype.kind == "f" and not bool((y == y.astype("int64")).all()):
            raise DTypeError(f"class labels in {what} must be integers")
        if y.dtype.kind not in "iufb":
            raise DTypeError(f"class labels in {what} must be integers, got dtype {y.dtype}")
        y = y.astype("int64")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= n_outputs:
            raise ShapeError(
                f"class labels must lie in [0, {n_outputs - 1}] for {n_outputs} outputs, found {low}..{high}"
            )
        return y
    y = backend.asarray(y, model.dtype)
    if y.ndim == 1 and not steps:
        y = y.reshape(-1, 1)
    expected = (n_rows, *output_shape)
    if tuple(y.shape) != expected:
        indices = (
            f"{(n_rows, *steps) if steps else (n_rows,)} (class indices) or "
            if loss.class_index_targets(n_outputs)
            else ""
        )
        raise ShapeError(f"{what} must have shape {indices}{expected} for this model, got {tuple(y.shape)}")
    return y


def sample_weights(model, Y, n: int, n_outputs: int, class_weight, sample_weight):
    """Weights combining ``sample_weight`` and ``class_weight`` (class -> weight), one per sample (per step of a
    sequence output when class weights apply per step), or None."""
    if class_weight is None and sample_weight is None:
        return None
    backend = model.backend
    weights = backend.full((n,), 1.0, model.dtype)
    if sample_weight is not None:
        sw = _native(model, sample_weight, "sample_weight")
        try:
            sw = backend.asarray(sw, model.dtype).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DTypeError(f"sample_weight must be numeric: {exc}") from None
        if sw.shape[0] != n:
            raise ShapeError(f"sample_weight has {sw.shape[0]} entries for {n} rows")
        if not backend.all_finite(sw) or bool((sw < 0).any()) or not bool((sw > 0).any()):
            raise ShapeError("sample_weight must be finite, non-negative and not all zero")
        weights = weights * sw
    if class_weight is not None:
        if not hasattr(class_weight, "items"):
            raise DTypeError(f"class_weight must be a dict class -> weight, got {type(class_weight).__name__}")
        if Y.dtype.kind in "iu":
            labels = Y
        else:
            labels = (Y[..., 0] >= 0.5).astype("int64") if Y.shape[-1] == 1 else Y.argmax(axis=-1)
        table = backend.full((max(n_outputs, 2),), 1.0, model.dtype)
        for cls, w in class_weight.items():
            try:
                cls, w = int(cls), float(w)
            except (TypeError, ValueError):
                raise DTypeError(f"class_weight maps class numbers to weights, got {cls!r} -> {w!r}") from None
            if not 0 <= cls < table.shape[0] or not w >= 0 or w == float("inf"):
                raise ShapeError(f"class_weight has class {cls} -> {w}; classes are 0..{table.shape[0] - 1}")
            table[cls] = w
        per_label = table[labels]  # one weight per sample, or per step of a sequence output
        weights = weights.reshape((n,) + (1,) * (per_label.ndim - 1)) * per_label
    return backend.asarray(weights)
