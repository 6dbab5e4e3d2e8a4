"""Callbacks: code that runs at fixed points of ``fit`` (Keras's hooks and names).

A callback sees the model as ``self.model``, the fit's settings as ``self.params`` (``epochs``, ``batch_size``,
``steps``, ``rows``, ``verbose``) and the epoch's ``logs`` (``loss``, metrics, ``val_*``, ``lr``). Setting
``self.model.stop_training = True`` ends training after the current epoch. ``get_state``/``set_state`` let
checkpoints resume a callback exactly where it was.

Logs for other tools: :class:`TensorBoard` (extra ``tensorboard``) and :class:`MLflowLogger` (extra ``mlflow``),
each in a module of its own that is imported only when used.
"""

from __future__ import annotations

import csv
import math
import os
import warnings

from netcore.errors import ConfigurationError


class Callback:
    """Base class: override any of the hooks."""

    #: Whether the callback writes files (then only rank 0 of a distributed job runs it).
    writes_files = False

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = dict(params)

    def wants_batches(self) -> bool:
        """Whether fit must call the batch hooks (reading each batch's loss, a device synchronisation on a GPU)."""
        return (
            type(self).on_batch_begin is not Callback.on_batch_begin
            or type(self).on_batch_end is not Callback.on_batch_end
        )

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch: int, logs=None): ...

    def on_epoch_end(self, epoch: int, logs=None): ...

    def on_batch_begin(self, batch: int, logs=None): ...

    def on_batch_end(self, batch: int, logs=None): ...

    def get_state(self) -> tuple[dict, dict]:
        """(JSON-able values, named arrays) that :meth:`set_state` restores."""
        return {}, {}

    def set_state(self, values: dict, arrays: dict) -> None: ...


class LogWriter(Callback):
    """A callback that writes logs where writing may fail (a full disk, a lost server): the first failure warns,
    later writes are skipped, and training goes on. Only rank 0 of a distributed job runs it."""

    writes_files = True

    def __init__(self):
        super().__init__()
        self.failed = False

    def safely(self, what: str, action, *args, **kwargs):
        """``action(*args, **kwargs)``, or None after a warning if it (or an earlier write) failed."""
        if self.failed:
            return None
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a log must never end training, whatever its library raises
            self.failed = True
            warnings.warn(
                f"{type(self).__name__} could not {what} ({type(exc).__name__}: {exc}); training goes on without "
                "these logs",
                RuntimeWarning,
                stacklevel=2,
            )
            return None


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigurationError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in ("acc", "f1", "precision", "recall", "r2")) else "min"


class _Monitor(Callback):
    """Shared bookkeeping of callbacks that watch one logged quantity for improvement."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        super().__init__()
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self._warned = False

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None and not self._warned:
            warnings.warn(
                f"{type(self).__name__}: {self.monitor!r} is not logged (available: "
                f"{', '.join(sorted(logs or {}))}); it does nothing",
                stacklevel=3,
            )
            self._warned = True
        return value

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def get_state(self):
        return {"best": self.best, "wait": self.wait}, {}

    def set_state(self, values, arrays):
        self.best, self.wait = values["best"], values["wait"]


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; by default put back the
    weights of the best epoch."""

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ):
        super().__init__(monitor, mode, min_delta)
        if patience < 0:
            raise ConfigurationError(f"patience must be >= 0, got {patience}")
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None:
            return
        if self._improved(value):
            self.best, self.wait, self.best_epoch = value, 0, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self._on_plateau(epoch)

    def _on_plateau(self, epoch: int) -> None:
        """What ``patience`` epochs without improvement lead to: stopping (subclasses may try something first)."""
        self.stopped_epoch = epoch
        self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch is not None and self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def get_state(self):
        values = {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch}
        arrays = {f"w{i}": w for i, w in enumerate(self.best_weights or [])}
        return values, arrays

    def set_state(self, values, arrays):
        self.best, self.wait, self.best_epoch = values["best"], values["wait"], values["best_epoch"]
        self.best_weights = [arrays[f"w{i}"] for i in range(len(arrays))] or None


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``) after every epoch, or only when ``monitor`` improves (``save_best_only``).
    ``filepath`` may hold ``{epoch}`` and any logged name, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.ncz"``; its
    directory is created when missing (as Keras does), so a long run does not fail at its first save."""

    writes_files = True

    def __init__(
        self,
        filepath: str,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best_only: bool = False,
        min_delta: float = 0.0,
    ):
        super().__init__(monitor, mode, min_delta)
        self.filepath = str(filepath)
        self.save_best_only = save_best_only
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._current(logs)
            if value is None or not self._improved(value):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.model.save(path)
        self.saved.append(path)


class LearningRateScheduler(Callback):
    """Set the learning rate before each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.lr = float(self.schedule(epoch, self.model.optimizer.lr))


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs, then wait
    ``cooldown`` epochs; never below ``min_lr``."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        super().__init__(monitor, mode, min_delta)
        if not 0 < factor < 1:
            raise ConfigurationError(f"factor must be in (0, 1), got {factor}")
        self.factor, self.patience, self.cooldown, self.min_lr = factor, patience, cooldown, min_lr
        self.cooldown_left = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None:
            return
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = self.model.optimizer
                new = max(optimizer.lr * self.factor, self.min_lr)
                if new < optimizer.lr:
                    optimizer.lr = new
                self.cooldown_left, self.wait = self.cooldown, 0

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}, {}

    def set_state(self, values, arrays):
        self.best, self.wait, self.cooldown_left = values["best"], values["wait"], values["cooldown_left"]


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` then every log) to a CSV file."""

    writes_files = True

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.separator, self.append = str(filename), separator, append
        self._keys = None

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        new_file = not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        if self._keys is None:
            self._keys = sorted(logs)
        with open(self.filename, "a", newline="") as handle:
            writer = csv.writer(handle, delimiter=self.separator)
            if new_file:
                writer.writerow(["epoch", *self._keys])
            writer.writerow([epoch, *(logs.get(k, "") for k in self._keys)])


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite; ``history.stop_reason`` says where."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and not self.model.stop_training:
            self.model.stop_training = True
            self.model.stop_reason = f"batch {batch}: loss is {loss}"


__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "LogWriter",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]


class OptunaPruning(Callback):
    """Reports ``monitor`` to an Optuna ``trial`` after every epoch and stops the trial when its pruner says so
    (raising Optuna's ``TrialPruned`` out of ``fit``, as Optuna's integrations do). Usable in any ``fit``; the
    tuning module adds it to every trial. :attr:`epochs` counts the epochs the trial trained."""

    def __init__(self, trial, monitor: str = "val_loss"):
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigurationError(
                f"OptunaPruning monitors {self.monitor!r}, which fit does not log (it logs {sorted(logs)}); "
                "give fit validation data for val_* quantities"
            )
        self.trial.report(float(logs[self.monitor]), epoch)
        if self.trial.should_prune():
            from netcore.tuning import optuna_module

            raise optuna_module().TrialPruned(
                f"pruned after epoch {epoch + 1}: {self.monitor} {logs[self.monitor]:.4g}"
            )


def __getattr__(name: str):
    """:class:`TensorBoard` and :class:`MLflowLogger` live in modules of their own, imported when first named."""
    if name == "TensorBoard":
        from netcore.tensorboard_logs import TensorBoard

        return TensorBoard
    if name == "MLflowLogger":
        from netcore.mlflow_runs import MLflowLogger

        return MLflowLogger
    raise AttributeError(f"module 'netcore.callbacks' has no attribute {name!r}")
