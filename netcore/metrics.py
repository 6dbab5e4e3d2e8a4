"""Metrics by name, computed from a model's outputs with array methods only (so on the model's own device).

Each metric is ``fn(pred, target) -> float`` where ``pred`` is the model's output (probabilities or values) and
``target`` the prepared targets (class indices, or arrays shaped like ``pred``).
"""

from __future__ import annotations

from netcore._names import lookup


def _classes(pred, target):
    """Predicted and true class indices (a one-column output is a binary probability)."""
    if pred.shape[1] == 1:
        predicted = (pred[:, 0] >= 0.5).astype(target.dtype)
        true = target.reshape(-1)
    else:
        predicted = pred.argmax(axis=1)
        true = target if target.ndim == 1 else target.argmax(axis=1)
    return predicted, true


def accuracy(pred, target) -> float:
    """Share of rows whose predicted class is the true class."""
    predicted, true = _classes(pred, target)
    return float((predicted == true).mean())


def mse(pred, target) -> float:
    diff = pred - target.reshape(pred.shape)
    return float((diff * diff).mean())


def mae(pred, target) -> float:
    return float(abs(pred - target.reshape(pred.shape)).mean())


_METRICS = {"accuracy": accuracy, "acc": accuracy, "mse": mse, "mae": mae}


def get(name: str):
    """The metric function called ``name``."""
    return lookup("metric", name, _METRICS)


def canonical_name(name: str) -> str:
    return get(name).__name__
