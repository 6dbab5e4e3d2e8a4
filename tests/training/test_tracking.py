"""Watching training: TensorBoard event files read back with TensorBoard's own EventAccumulator, MLflow runs read
back with mlflow.search_runs, the command line's --tensorboard and --mlflow, nested runs for tune, and logs that
fail to be written (a warning once, training goes on)."""

from __future__ import annotations

import errno
import json
import sys
import warnings

import numpy as np
import pytest

import netcore
from netcore import callbacks
from netcore.cli import main
from netcore.layers import BatchNorm, Dense

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
mlflow = pytest.importorskip("mlflow")


def data(rows=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 4)).astype("float32")
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def model():
    net = netcore.Sequential([Dense(8, use_bias=False), BatchNorm(), Dense(2, "softmax")], input_dim=4, seed=0)
    return net.compile("adam", "cross_entropy", ["accuracy"])


def read(folder):
    accumulator = event_accumulator.EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """MLflow's store and artifacts in this test's folder."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


# ----------------------------------------------------------------------------------------------- TensorBoard
def test_tensorboard_writes_scalars_histograms_and_the_model_as_keras_lays_them_out(tmp_path):
    X, y = data()
    board = callbacks.TensorBoard(tmp_path / "logs", update_freq=2, histogram_freq=2)
    model().fit(X, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0, callbacks=[board])
    train, validation = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    scalars = set(train.Tags()["scalars"])
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_seconds", "batch_loss"} <= scalars
    assert [e.step for e in train.Scalars("epoch_loss")] == [0, 1, 2, 3]
    assert [e.step for e in train.Scalars("batch_loss")] == list(range(2, 4 * 6 + 1, 2))  # 6 batches an epoch
    assert set(validation.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy"}
    assert [e.step for e in validation.Scalars("epoch_accuracy")] == [0, 1, 2, 3]
    histograms = set(train.Tags()["histograms"])
    assert {"dense/W", "dense/W/gradient", "batchnorm/gamma", "dense_1/b/gradient"} <= histograms
    assert [e.step for e in train.Histograms("dense/W")] == [1, 3]  # every second epoch
    assert train.Histograms("dense/W")[0].histogram_value.num == 4 * 8
    text = train.Tensors("model/summary")[0].tensor_proto.string_val[0].decode()
    assert "dense (Dense)" in text and "total parameters" in text


def test_tensorboard_reads_no_batch_losses_unless_asked(tmp_path):
    board = callbacks.TensorBoard(tmp_path)
    assert not board.wants_batches() and callbacks.TensorBoard(tmp_path, update_freq="batch").wants_batches()
    with pytest.raises(netcore.ConfigurationError, match="update_freq"):
        callbacks.TensorBoard(tmp_path, update_freq="step")


def test_a_log_that_cannot_be_written_warns_once_and_training_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    X, y = data()
    net = model()
    with pytest.warns(RuntimeWarning, match="TensorBoard could not") as caught:
        history = net.fit(X, y, epochs=3, verbose=0, callbacks=[callbacks.TensorBoard(blocker / "logs")])
    assert len(history.epoch) == 3 and len([w for w in caught if "TensorBoard" in str(w.message)]) == 1


def test_a_disk_that_fills_up_mid_training_warns_once(tmp_path, monkeypatch):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    written = []

    def add_event(self, event):
        if len(written) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(event)

    monkeypatch.setattr(EventFileWriter, "add_event", add_event)
    X, y = data()
    with pytest.warns(RuntimeWarning, match="No space left on device") as caught:
        history = model().fit(X, y, epochs=4, verbose=0, callbacks=[callbacks.TensorBoard(tmp_path)])
    assert len(history.epoch) == 4 and len(caught) == 1


def _hide(monkeypatch, package: str) -> None:
    """Make ``package`` (and what of it was imported already) unimportable."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


def test_a_missing_package_names_the_extra(monkeypatch):
    _hide(monkeypatch, "tensorboard")
    with pytest.raises(netcore.BackendUnavailableError, match=r"netcore-nn\[tensorboard\]"):
        callbacks.TensorBoard("logs")
    _hide(monkeypatch, "mlflow")
    with pytest.raises(netcore.BackendUnavailableError, match=r"netcore-nn\[mlflow\]"):
        callbacks.MLflowLogger()


def test_the_integrations_are_imported_only_when_used():
    import subprocess

    code = "import netcore, sys; print('tensorboard' in sys.modules, 'mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_log_writers_run_on_rank_zero_only():
    assert callbacks.TensorBoard.writes_files and callbacks.MLflowLogger.writes_files


# ----------------------------------------------------------------------------------------------- MLflow
def test_an_mlflow_run_holds_the_settings_every_epochs_metrics_and_the_model(tracking, tmp_path):
    X, y = data()
    logger = callbacks.MLflowLogger(experiment="digits", run_name="first")
    net = model()
    net.fit(X, y, epochs=3, batch_size=20, validation_split=0.25, verbose=0, callbacks=[logger])
    runs = mlflow.search_runs(experiment_names=["digits"])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED" and run["tags.mlflow.runName"] == "first" and run["run_id"] == logger.run_id
    assert run["params.batch_size"] == "20" and run["params.epochs"] == "3" and run["params.optimizer"] == "Adam"
    assert (
        run["params.optimizer.lr"] == "0.001" and run["params.seed"] == "0" and "Dense(units=8" in run["params.layers"]
    )
    client = mlflow.MlflowClient()
    history = client.get_metric_history(logger.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 1, 2]
    artifacts = [a.path for a in client.list_artifacts(logger.run_id)]
    assert artifacts == ["model.ncz"]
    local = client.download_artifacts(logger.run_id, "model.ncz", str(tmp_path))
    np.testing.assert_allclose(netcore.load(local).predict(X), net.predict(X), rtol=1e-6)


def test_mlflow_metrics_equal_the_history(tracking):
    X, y = data()
    logger = callbacks.MLflowLogger(log_model=False)
    history = model().fit(X, y, epochs=3, verbose=0, validation_split=0.25, callbacks=[logger])
    client = mlflow.MlflowClient()
    for key in ("loss", "accuracy", "val_loss", "lr"):
        assert [m.value for m in client.get_metric_history(logger.run_id, key)] == pytest.approx(history[key])


def test_an_unreachable_store_warns_once_and_training_goes_on(tmp_path):
    X, y = data()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    logger = callbacks.MLflowLogger(tracking_uri=f"sqlite:///{blocker}/mlflow.db")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model().fit(X, y, epochs=2, verbose=0, callbacks=[logger])
    mine = [w for w in caught if "MLflowLogger could not" in str(w.message)]
    assert len(history.epoch) == 2 and len(mine) == 1 and logger.run_id is None


# ----------------------------------------------------------------------------------------------- command line
def test_the_command_line_writes_both(tracking, tmp_path, capsys):
    code = main(["train", "--dataset", "iris", "--epochs", "3", "--tensorboard", "tb", "--mlflow", "cli", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tensorboard"] == "tb" and result["mlflow_run"]
    assert [e.step for e in read(tmp_path / "tb" / "train").Scalars("epoch_loss")] == [0, 1, 2]
    runs = mlflow.search_runs(experiment_names=["cli"])
    assert list(runs["run_id"]) == [result["mlflow_run"]] and runs.iloc[0]["status"] == "FINISHED"


def test_tune_logs_each_trial_as_a_nested_run(tracking, capsys):
    pytest.importorskip("optuna")
    arguments = ["tune", "--dataset", "iris", "--trials", "3", "--epochs", "2", "--mlflow", "search", "--json"]
    assert main(arguments) == 0
    parent = json.loads(capsys.readouterr().out)["mlflow_run"]
    runs = mlflow.search_runs(experiment_names=["search"])
    children = runs[runs["tags.mlflow.parentRunId"] == parent]
    assert len(runs) == 4 and len(children) == 3
    assert set(children["status"]) <= {"FINISHED", "KILLED"} and "params.lr" in children.columns
    top = runs[runs["run_id"] == parent].iloc[0]
    assert top["status"] == "FINISHED" and not np.isnan(top["metrics.best_value"])
