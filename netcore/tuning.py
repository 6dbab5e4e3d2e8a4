"""Hyperparameter search with Optuna (host side; the optional extra ``tune``): a default search space, an objective
that trains a netcore model per trial with pruning, and studies shared by any number of processes through Optuna's
storages. There is no search loop here: Optuna's ``Study`` runs the trials.

``netcore.tuning.tune(X, y, n_trials=30)`` returns the ``optuna.Study``; ``study.best_params`` rebuild the best model
with :func:`build_model`. Several processes (on one machine or many) work on one study when they pass the same
``storage`` and ``study_name``: ``"sqlite:///study.db"`` on one machine, a PostgreSQL or MySQL URL, or
``"journal:/shared/path/study.log"`` (Optuna's journal file) on a shared file system. A process that dies mid-trial
leaves that trial running in the storage; with an RDB storage, its heartbeat stops and the next process to start a
trial marks it failed (after a grace period of :data:`GRACE_SECONDS`); trials are never run twice.
"""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np

import netcore
from netcore.errors import BackendUnavailableError, ConfigurationError, DivergenceError

#: The default search space: a range ``(low, high)`` (sampled on a log scale where marked) or a tuple of choices.
DEFAULT_SPACE = {
    "lr": (1e-4, 1e-1),  # log
    "layers": (1, 3),
    "units": (16, 512),  # log
    "activation": ("relu", "tanh", "elu", "gelu"),
    "dropout": (0.0, 0.5),
    "batchnorm": (False, True),
    "optimizer": ("adam", "sgd", "rmsprop"),
    "batch_size": (16, 256),  # log
    "l2": (1e-6, 1e-2),  # log
}
_LOG_SCALE = {"lr", "units", "batch_size", "l2"}
_CHOICES = {"activation", "batchnorm", "optimizer"}
_INTEGERS = {"layers", "units", "batch_size"}
#: Seconds between a running trial's heartbeats in an RDB storage, and before a silent trial is marked failed.
HEARTBEAT_SECONDS, GRACE_SECONDS = 10, 60
#: Times a process tries to open an RDB storage that other processes are creating at the same moment.
CREATION_ATTEMPTS = 8


def optuna_module():
    """Optuna, or an error naming the extra that installs it."""
    try:
        import optuna
    except ImportError as exc:
        raise BackendUnavailableError(
            f"hyperparameter search needs Optuna ({exc}); install it with: pip install 'netcore-nn[tune]'"
        ) from None
    return optuna


# ----------------------------------------------------------------------------------------------- the search space
def check_space(overrides: dict) -> dict:
    """The default space with ``overrides`` applied, each checked (known name, non-empty increasing range)."""
    unknown = sorted(set(overrides) - set(DEFAULT_SPACE))
    if unknown:
        raise ConfigurationError(f"unknown search-space parameter(s) {unknown}; the space has {list(DEFAULT_SPACE)}")
    space = {**DEFAULT_SPACE, **overrides}
    for name, value in overrides.items():
        if name in _CHOICES:
            if not isinstance(value, (tuple, list)) or not value:
                raise ConfigurationError(f"{name} must be a non-empty tuple of choices, got {value!r}")
            continue
        try:
            low, high = value
            valid = low <= high and (low > 0 if name in _LOG_SCALE else low >= 0)
        except (TypeError, ValueError):
            valid = False
        if not valid or (name in _INTEGERS and not all(float(v).is_integer() for v in (low, high))):
            log = " (positive: sampled on a log scale)" if name in _LOG_SCALE else ""
            kind = "integers" if name in _INTEGERS else "numbers"
            raise ConfigurationError(
                f"{name} must be a range (low, high) of {kind} with low <= high{log}, got {value!r}"
            )
    return space


def search_space(trial, **overrides) -> dict:
    """Draw one configuration from ``trial`` (an ``optuna.Trial``): the learning rate and the L2 strength on a log
    scale, 1-3 hidden layers of 16-512 units each (log scale), the activation, a dropout rate, batch norm or not, the
    optimizer (Adam, SGD with momentum 0.9, RMSprop) and the batch size (log scale). Any range or set of choices can
    be replaced by keyword: ``search_space(trial, layers=(2, 2), optimizer=("adam",))``."""
    space = check_space(overrides)
    params = {}
    for name in ("lr", "layers", "activation", "dropout", "batchnorm", "optimizer", "batch_size", "l2"):
        params[name] = _suggest(trial, name, space[name])
    for i in range(params["layers"]):
        params[f"units_{i}"] = _suggest(trial, f"units_{i}", space["units"], scale="units")
    return params


def _suggest(trial, name: str, bounds, scale: str | None = None):
    key = scale or name
    if key in _CHOICES:
        return trial.suggest_categorical(name, list(bounds))
    low, high = bounds
    if key in _INTEGERS:
        return trial.suggest_int(name, int(low), int(high), log=key in _LOG_SCALE and low < high)
    return trial.suggest_float(name, float(low), float(high), log=key in _LOG_SCALE and low < high)


# ----------------------------------------------------------------------------------------------- models
def build_model(params: dict, input_dim: int, n_outputs: int, classification: bool, device=None, seed: int = 0):
    """The compiled netcore model a configuration describes (hidden Dense layers with the activation, each with
    batch norm before the activation and dropout after it when chosen; softmax cross-entropy or squared error)."""
    from netcore.layers import Activation, BatchNorm, Dense, Dropout

    penalty = netcore.regularizers.L2(params["l2"]) if params.get("l2") else None
    layers = []
    for i in range(int(params["layers"])):
        width = int(params[f"units_{i}"])
        if params.get("batchnorm"):
            layers += [
                Dense(width, use_bias=False, kernel_regularizer=penalty),
                BatchNorm(),
                Activation(params["activation"]),
            ]
        else:
            layers.append(Dense(width, params["activation"], kernel_regularizer=penalty))
        if params.get("dropout"):
            layers.append(Dropout(params["dropout"]))
    layers.append(Dense(n_outputs, "softmax") if classification else Dense(n_outputs))
    model = netcore.Sequential(layers, input_dim=input_dim, device=device, seed=seed)
    options = {"momentum": 0.9} if params["optimizer"] == "sgd" else {}
    optimizer = netcore.optimizers.get(params["optimizer"], lr=params["lr"], **options)
    return model.compile(
        optimizer, "cross_entropy" if classification else "mse", ["accuracy"] if classification else []
    )


# ----------------------------------------------------------------------------------------------- studies
def open_storage(storage):
    """An Optuna storage from a URL (``sqlite:///``, ``postgresql://``, ``mysql://``: with heartbeats, so a trial
    whose process died is marked failed), ``journal:PATH`` (Optuna's journal file), or a storage object; None for
    memory. A URL that cannot be opened is a ConfigurationError now, before any trial."""
    optuna = optuna_module()
    if storage is None or not isinstance(storage, str):
        return storage
    warnings.filterwarnings("ignore", message=".*heartbeat", category=optuna.exceptions.ExperimentalWarning)
    if storage.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(storage.removeprefix("journal:"))
        return optuna.storages.JournalStorage(backend)
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None  # wait for the lock
    for attempt in range(CREATION_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                storage,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
            )
        except Exception as exc:  # SQLAlchemy's and the drivers' errors are many
            # Processes that open a new database together race to create its tables; the losers see the
            # winner's tables appear mid-way and succeed when they look again.
            racing = any(sign in str(exc) for sign in ("already exists", "UNIQUE constraint", "database is locked"))
            if not racing or attempt == CREATION_ATTEMPTS - 1:
                raise ConfigurationError(
                    f"cannot open the study storage {storage!r}: {type(exc).__name__}: {exc}"
                ) from None
            time.sleep(0.2 * (attempt + 1))


def create_study(direction: str, storage=None, study_name=None, sampler=None, pruner=None, seed: int = 0):
    """A new study, or the existing one of that name in the storage (joined by every process that asks for it).
    Joining a study that optimises in the other direction is a ConfigurationError. The default sampler is TPE
    seeded with ``seed`` (mixed with the process id when the study is stored, so that processes sharing it draw
    different configurations)."""
    optuna = optuna_module()
    if sampler is None:
        # Processes that share a study must not draw the same configurations: each seeds its own sampler.
        shared = storage is not None
        sampler = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + os.getpid()) % 2**32 if shared else seed)
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
    study = optuna.create_study(
        storage=open_storage(storage),
        sampler=sampler,
        pruner=pruner,
        study_name=study_name,
        direction=direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise ConfigurationError(
            f"study {study_name!r} exists and is {study.direction.name.lower()}d; this search {direction}s "
            f"{'validation accuracy' if direction == 'maximize' else 'validation loss'}: use another study name"
        )
    return study


def _split(X, y, validation_split: float, classification: bool, seed: int):
    from sklearn.model_selection import train_test_split

    if not 0 < validation_split < 1:
        raise ConfigurationError(f"validation_split must be in (0, 1), got {validation_split!r}")
    strata = y if classification else None
    return train_test_split(X, y, test_size=validation_split, stratify=strata, random_state=seed)


def objective(X_train, y_train, X_val, y_val, classification, epochs, device, seed, space, trial_callbacks=None):
    """The function Optuna calls per trial: train the trial's configuration, report the validation score every
    epoch (pruning stops a poor trial), return the best epoch's score. A diverging trial is pruned with its reason.
    ``trial_callbacks(trial, params)`` gives more callbacks for a trial's fit; any with a ``finish(status)`` method
    (an MLflow run) is finished as the trial ends: ``FINISHED``, ``KILLED`` when pruned, ``FAILED`` on an error."""
    optuna = optuna_module()
    n_outputs = int(np.max(y_train)) + 1 if classification else (1 if y_train.ndim == 1 else y_train.shape[1])
    monitor = "val_accuracy" if classification else "val_loss"

    def run(trial) -> float:
        params = search_space(trial, **space)
        model = build_model(params, X_train.shape[1], n_outputs, classification, device, seed)
        callback = netcore.callbacks.OptunaPruning(trial, monitor=monitor)
        extra = list(trial_callbacks(trial, params)) if trial_callbacks else []
        status = "FAILED"
        targets = (
            (y_train, y_val) if classification else (y_train.reshape(len(y_train), -1), y_val.reshape(len(y_val), -1))
        )
        try:
            history = model.fit(
                X_train,
                targets[0],
                epochs=epochs,
                batch_size=int(params["batch_size"]),
                validation_data=(X_val, targets[1]),
                callbacks=[callback, *extra],
                verbose=0,
            )
            status = "FINISHED"
        except optuna.TrialPruned:
            status = "KILLED"
            raise
        except DivergenceError as exc:
            status = "KILLED"
            trial.set_user_attr("failure", f"diverged: {exc}")
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except netcore.NetcoreError as exc:
            trial.set_user_attr("failure", str(exc))  # the study records the trial as failed, with this reason
            raise
        finally:
            trial.set_user_attr("epochs", callback.epochs)
            for cb in extra:
                if hasattr(cb, "finish"):
                    cb.finish(status)
        scores = [s for s in history.history[monitor] if math.isfinite(s)]
        if not scores:
            raise optuna.TrialPruned(f"no finite {monitor}")
        return max(scores) if classification else min(scores)

    return run


def tune(
    X,
    y,
    n_trials: int = 30,
    storage=None,
    study_name: str | None = None,
    sampler=None,
    pruner=None,
    validation_split: float = 0.2,
    epochs: int = 30,
    device=None,
    seed: int = 0,
    timeout: float | None = None,
    task: str = "auto",
    space: dict | None = None,
    progress=None,
    trial_callbacks=None,
):
    """Search for a dense network for ``(X, y)`` with Optuna and return the ``optuna.Study``.

    Each trial draws a configuration (:func:`search_space`, ranges overridable through ``space``), trains it on the
    training part for up to ``epochs`` epochs and reports the validation accuracy (classification; the loss for
    regression) after every epoch, so the pruner (default: Optuna's median pruner) stops poor trials early. The
    default sampler is TPE seeded with ``seed``. ``task="auto"`` treats integer labels as classes. With ``storage``
    and ``study_name``, this process joins the study that other processes may be running; ``n_trials`` counts this
    process's trials. ``progress(study, trial)`` is called after each trial; ``trial_callbacks(trial, params)``
    gives more callbacks for each trial's fit (see :func:`objective`). A trial that fails (a netcore error:
    divergence, a bad batch for batch norm) is recorded as failed with its reason and the search goes on.
    """
    optuna = optuna_module()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials keep their reason in the study
    space = dict(space or {})
    check_space(space)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    classification = task == "classification" or (task == "auto" and y.dtype.kind in "iub")
    direction = "maximize" if classification else "minimize"
    study = create_study(direction, storage, study_name, sampler, pruner, seed)
    X_train, X_val, y_train, y_val = _split(X, y, validation_split, classification, seed)
    run = objective(X_train, y_train, X_val, y_val, classification, epochs, device, seed, space, trial_callbacks)
    callbacks = [progress] if progress else []
    study.optimize(run, n_trials=n_trials, timeout=timeout, catch=(netcore.NetcoreError,), callbacks=callbacks)
    return study


def trial_counts(study) -> dict:
    """How many trials of the study completed, were pruned, failed or still run."""
    optuna = optuna_module()
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    kinds = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}
    kinds.update(failed=optuna.trial.TrialState.FAIL, running=optuna.trial.TrialState.RUNNING)
    return {name: sum(state == kind for state in states) for name, kind in kinds.items()}
