"""Metrics by name, computed from a model's outputs with array methods only (so on the model's own device).

Each metric is ``fn(backend, pred, target) -> float``: ``pred`` is the model's output (class probabilities, one sigmoid
probability per row, or regression values) and ``target`` the prepared targets (class indices, or arrays shaped like
``pred``). Classification metrics threshold one-column outputs at 0.5.
"""

from __future__ import annotations

from netcore._names import lookup


def _classes(backend, pred, target):
    """Predicted and true class indices (a one-column output is a binary probability)."""
    if pred.shape[1] == 1:
        predicted = (pred[:, 0] >= 0.5).astype("int64")
        true = target.reshape(-1).astype("int64")
    else:
        predicted = pred.argmax(axis=1)
        true = target if target.ndim == 1 else target.argmax(axis=1)
    return predicted, true


def accuracy(backend, pred, target) -> float:
    """Share of rows whose predicted class is the true class."""
    predicted, true = _classes(backend, pred, target)
    return float((predicted == true).mean())


def top_k_accuracy(backend, pred, target, k: int = 5) -> float:
    """Share of rows whose true class is among the ``k`` highest scores (ties counted in the row's favour)."""
    _, true = _classes(backend, pred, target)
    true_score = pred[backend.arange(pred.shape[0]), true]
    higher = (pred > true_score[:, None]).sum(axis=1)
    return float((higher < k).mean())


def top_3_accuracy(backend, pred, target) -> float:
    return top_k_accuracy(backend, pred, target, 3)


def top_5_accuracy(backend, pred, target) -> float:
    return top_k_accuracy(backend, pred, target, 5)


def _confusion(backend, pred, target):
    """Per-class true positives, predicted positives and actual positives (classes 0..C-1)."""
    predicted, true = _classes(backend, pred, target)
    classes = backend.arange(max(pred.shape[1], 2))
    hit = predicted[None, :] == classes[:, None]
    real = true[None, :] == classes[:, None]
    return (hit & real).sum(axis=1), hit.sum(axis=1), real.sum(axis=1)


def _ratio(num, den):
    return num / (den + (den == 0))  # 0 where the denominator is 0, as scikit-learn's zero_division=0


def _binary_or_macro(values, binary: bool) -> float:
    return float(values[1]) if binary else float(values.mean())


def precision(backend, pred, target) -> float:
    """Binary precision of class 1 (one-column or two-class outputs), else the macro average over classes."""
    tp, predicted, _ = _confusion(backend, pred, target)
    return _binary_or_macro(_ratio(tp, predicted), pred.shape[1] <= 2)


def recall(backend, pred, target) -> float:
    """Binary recall of class 1, else macro-averaged recall."""
    tp, _, actual = _confusion(backend, pred, target)
    return _binary_or_macro(_ratio(tp, actual), pred.shape[1] <= 2)


def f1(backend, pred, target) -> float:
    """Binary F1 of class 1, else the macro average of per-class F1."""
    tp, predicted, actual = _confusion(backend, pred, target)
    return _binary_or_macro(_ratio(2 * tp, predicted + actual), pred.shape[1] <= 2)


def macro_precision(backend, pred, target) -> float:
    tp, predicted, _ = _confusion(backend, pred, target)
    return float(_ratio(tp, predicted).mean())


def macro_recall(backend, pred, target) -> float:
    tp, _, actual = _confusion(backend, pred, target)
    return float(_ratio(tp, actual).mean())


def macro_f1(backend, pred, target) -> float:
    tp, predicted, actual = _confusion(backend, pred, target)
    return float(_ratio(2 * tp, predicted + actual).mean())


def mse(backend, pred, target) -> float:
    """Mean squared error over every output."""
    diff = pred - target.reshape(pred.shape)
    return float((diff * diff).mean())


def mae(backend, pred, target) -> float:
    """Mean absolute error over every output."""
    return float(abs(pred - target.reshape(pred.shape)).mean())


def r2(backend, pred, target) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``, averaged over outputs (scikit-learn's r2_score)."""
    target = target.reshape(pred.shape)
    residual = ((target - pred) ** 2).sum(axis=0)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    scores = 1 - residual / (total + (total == 0))
    return float(scores.mean())


_METRICS = {
    "accuracy": accuracy,
    "acc": accuracy,
    "top_3_accuracy": top_3_accuracy,
    "top_5_accuracy": top_5_accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "macro_precision": macro_precision,
    "macro_recall": macro_recall,
    "macro_f1": macro_f1,
    "mse": mse,
    "mae": mae,
    "r2": r2,
}


def get(name: str):
    """The metric function called ``name``."""
    return lookup("metric", name, _METRICS)


def canonical_name(name: str) -> str:
    return get(name).__name__
