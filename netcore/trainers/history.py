"""What ``fit`` returns."""

from __future__ import annotations


class History:
    """``history["loss"]``, ``history["val_accuracy"]``, ... one value per epoch (``cls_loss``, ``cls_accuracy``
    for an output named ``cls`` of a model with several), plus ``epoch`` (0-based indices) and ``interrupted``."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False
        self.stop_reason: str | None = None

    def record(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
