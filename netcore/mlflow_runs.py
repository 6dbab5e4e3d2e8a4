"""``callbacks.MLflowLogger``: each training as an MLflow run (the optional extra ``mlflow``), to compare in
``mlflow ui``.

A run records the parameters (the model's class, layers and size, the optimizer and its settings, the loss, batch
size, epochs, seed, device and dtype, and any ``params`` given), every logged quantity per epoch, and the trained
model as a ``.ncz`` checkpoint artifact. It uses an ``MlflowClient`` of its own, so it touches none of MLflow's
global state (an active run, the current experiment): the tracking URI is the one given, else MLflow's own default
(``MLFLOW_TRACKING_URI`` if set, else MLflow's local store in the working directory, which ``mlflow ui`` run there
opens).
"""

from __future__ import annotations

import math
import os
import tempfile
import time

from netcore.callbacks import LogWriter
from netcore.errors import BackendUnavailableError

#: MLflow refuses parameter values longer than this.
MAX_PARAM = 6000


def _mlflow():
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise BackendUnavailableError(
            f"callbacks.MLflowLogger needs the mlflow package ({exc}); install it with: "
            "pip install 'netcore-nn[mlflow]'"
        ) from None
    return MlflowClient, Metric, Param


def model_params(model) -> dict:
    """What a run records of a compiled model."""
    optimizer = model.optimizer
    params = {
        "model": type(model).__name__,
        "layers": ", ".join(repr(layer) for layer in model.leaf_layers()),
        "parameters": model.count_params(),
        "optimizer": type(optimizer).__name__,
        **{f"optimizer.{k}": v for k, v in optimizer.hyperparameters().items()},
        "loss": ", ".join(head.loss.name for head in model.heads),
        "seed": model.seed,
        "device": model.device,
        "dtype": model.dtype_name,
    }
    return params


class Run:
    """One MLflow run through a client of its own: ``Run(experiment, name)`` starts it, ``log_params``,
    ``log_metrics`` and ``log_artifact`` record into it, ``end`` ends it (once)."""

    def __init__(self, experiment=None, run_name=None, tracking_uri=None, parent_run_id=None):
        client_class, self._metric, self._param = _mlflow()
        self.client = client_class(tracking_uri)
        name = experiment or "Default"
        found = self.client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(name)
        tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id else None
        self.id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        self.ended = False

    def log_params(self, params: dict) -> None:
        entries = [self._param(str(k), str(v)[:MAX_PARAM]) for k, v in params.items()]
        self.client.log_batch(self.id, params=entries)

    def log_metrics(self, values: dict, step: int = 0) -> None:
        now = int(time.time() * 1000)
        metrics = [
            self._metric(key, float(value), now, step)
            for key, value in values.items()
            if isinstance(value, (int, float)) and math.isfinite(value)
        ]
        self.client.log_batch(self.id, metrics=metrics)

    def log_artifact(self, path: str) -> None:
        self.client.log_artifact(self.id, path)

    def end(self, status: str = "FINISHED") -> None:
        if not self.ended:
            self.ended = True
            self.client.set_terminated(self.id, status)


class MLflowLogger(LogWriter):
    """Log the training as an MLflow run of ``experiment`` (None: MLflow's default one) named ``run_name``.

    ``log_model`` adds the trained model as a ``.ncz`` artifact; ``tracking_uri`` is any URI MLflow accepts;
    ``parent_run_id`` makes the run a nested run (``netcore tune --mlflow`` logs each trial so); ``params`` are
    more parameters to record. Each fit with this callback is one run; :attr:`run_id` names the latest.
    """

    def __init__(
        self,
        experiment: str | None = None,
        run_name: str | None = None,
        log_model: bool = True,
        tracking_uri: str | None = None,
        parent_run_id: str | None = None,
        params: dict | None = None,
    ):
        super().__init__()
        _mlflow()  # a missing package is said now, not when training starts
        self.experiment, self.run_name, self.log_model = experiment, run_name, bool(log_model)
        self.tracking_uri, self.parent_run_id = tracking_uri, parent_run_id
        self.extra_params = dict(params or {})
        self.run: Run | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def _start(self) -> None:
        self.run = Run(self.experiment, self.run_name, self.tracking_uri, self.parent_run_id)
        settings = {"batch_size": self.params.get("batch_size"), "epochs": self.params.get("epochs")}
        self.run.log_params({**model_params(self.model), **settings, **self.extra_params})

    def on_train_begin(self, logs=None):
        self.safely("start an MLflow run", self._start)

    def on_epoch_end(self, epoch, logs=None):
        if self.run is not None and not self.run.ended:
            self.safely("log the epoch's metrics", self.run.log_metrics, logs or {}, self.model.epochs_trained - 1)

    def on_train_end(self, logs=None):
        if self.run is None or self.run.ended:
            return
        if self.log_model:
            self.safely("log the model", self._log_model)
        self.finish("FINISHED")

    def _log_model(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.ncz")
            self.model.save(path)
            self.run.log_artifact(path)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (``FINISHED``, ``FAILED``, ``KILLED``); a run already ended is left alone.
        ``fit`` finishes it; whoever stops a fit by an exception (a pruned trial) finishes it so."""
        if self.run is not None and not self.run.ended:
            self.safely("end the MLflow run", self.run.end, status)
