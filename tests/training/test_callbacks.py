"""Every callback, the progress modes and Ctrl-C handling of fit."""

from __future__ import annotations

import csv
import os
import signal
import threading

import numpy as np
import pytest

import netcore
from netcore import callbacks
from netcore.layers import Dense


def problem(seed=0, n=120):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype("int64")
    return X, y


def model(device="numpy", lr=1e-2):
    m = netcore.Sequential([Dense(8, "relu"), Dense(2, "softmax")], input_dim=4, device=device, seed=0)
    m.compile(netcore.optimizers.Adam(lr=lr), "cross_entropy", ["accuracy"])
    return m


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin{epoch}")

    def on_batch_end(self, batch, logs=None):
        self.calls.append("batch")
        assert np.isfinite(logs["loss"]) and logs["size"] > 0

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end{epoch}")
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"} <= set(logs)

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_user_callback_hooks_run_in_order():
    X, y = problem()
    recorder = Recorder()
    model().fit(X, y, epochs=2, batch_size=50, validation_split=0.2, callbacks=[recorder], verbose=0)
    assert recorder.calls == [
        "train_begin",
        "epoch_begin0",
        "batch",
        "batch",
        "epoch_end0",
        "epoch_begin1",
        "batch",
        "batch",
        "epoch_end1",
        "train_end",
    ]


def test_early_stopping_stops_and_restores_the_best_weights():
    X, y = problem()
    m = model(lr=0.05)
    seen = []

    class Snapshot(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], m.get_weights()))

    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=2)
    history = m.fit(
        X, y, epochs=200, batch_size=16, validation_data=problem(1, 60), callbacks=[Snapshot(), stopper], verbose=0
    )
    assert len(history.epoch) < 200 and stopper.stopped_epoch == len(history.epoch) - 1
    best_loss, best_weights = min(seen, key=lambda item: item[0])
    assert stopper.best == best_loss
    for a, b in zip(m.get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_mode_and_min_delta():
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=0, min_delta=0.1)
    assert stopper.mode == "max"
    stopper.set_model(model())
    stopper.on_epoch_end(0, {"val_accuracy": 0.5})
    stopper.on_epoch_end(1, {"val_accuracy": 0.55})  # not better by min_delta
    assert stopper.model.stop_training


def test_model_checkpoint_best_only_and_every_epoch(tmp_path):
    X, y = problem()
    every = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}.ncz"), monitor="val_loss")
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.ncz"), monitor="val_accuracy", save_best_only=True)
    m = model()
    m.fit(X, y, epochs=3, batch_size=32, validation_split=0.25, callbacks=[every, best], verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["best.ncz", "e01.ncz", "e02.ncz", "e03.ncz"]
    restored = netcore.load(tmp_path / "e03.ncz")
    np.testing.assert_array_equal(restored.predict(X), m.predict(X))
    assert 1 <= len(best.saved) <= 3


def test_model_checkpoint_creates_its_directories(tmp_path):
    X, y = problem()
    saver = callbacks.ModelCheckpoint(str(tmp_path / "runs" / "epoch-{epoch}" / "m.ncz"), monitor="loss")
    model().fit(X, y, epochs=2, batch_size=32, callbacks=[saver], verbose=0)
    assert saver.saved == [str(tmp_path / "runs" / f"epoch-{e}" / "m.ncz") for e in (1, 2)]
    assert all(os.path.isfile(path) for path in saver.saved)


def test_learning_rate_scheduler_and_reduce_on_plateau():
    X, y = problem()
    m = model()
    history = m.fit(
        X,
        y,
        epochs=3,
        batch_size=40,
        verbose=0,
        callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
    )
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    reducer = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=1, min_lr=0.01)
    reducer.set_model(m)
    m.optimizer.lr = 0.08
    lrs = []
    for epoch in range(6):
        reducer.on_epoch_end(epoch, {"loss": 1.0})  # never improves after the first epoch
        lrs.append(m.optimizer.lr)
    # Keras's rule: the epoch that ends a cooldown already counts toward patience; never below min_lr.
    assert lrs == pytest.approx([0.08, 0.04, 0.02, 0.01, 0.01, 0.01])


def test_csv_logger(tmp_path):
    X, y = problem()
    path = tmp_path / "log.csv"
    model().fit(X, y, epochs=3, batch_size=40, callbacks=[callbacks.CSVLogger(str(path))], verbose=0)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and float(rows[-1]["accuracy"]) > 0


def test_terminate_on_nan_stops_training():
    X, y = problem()
    m = model()

    class Poison(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                m.layers[0].params["W"][0, 0] = float("nan")

    history = m.fit(X, y, epochs=5, batch_size=8, callbacks=[Poison(), callbacks.TerminateOnNaN()], verbose=0)
    assert history.stop_reason == "batch 3: loss is nan"
    assert m.optimizer.step_count == 3 and len(history.epoch) == 1  # the NaN batch is not applied


def test_missing_monitor_warns_once():
    X, y = problem()
    with pytest.warns(UserWarning, match="val_loss"):
        model().fit(X, y, epochs=2, callbacks=[callbacks.EarlyStopping()], verbose=0)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_progress_modes(capsys, verbose):
    X, y = problem()
    model().fit(X, y, epochs=2, batch_size=40, verbose=verbose)
    out, err = capsys.readouterr()
    if verbose == 0:
        assert out == "" and err == ""
    elif verbose == 1:
        assert "epoch 2/2" in err and "batch" in err  # tqdm writes to stderr
    else:
        assert out.count("\n") == 2 and "epoch 2/2" in out and "accuracy" in out


def test_interrupt_stops_at_a_step_boundary():
    X, y = problem(n=4000)
    m = model()

    class Interrupt(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 3:
                signal.raise_signal(signal.SIGINT)

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    history = m.fit(X, y, epochs=3, batch_size=10, callbacks=[Interrupt()], verbose=0)
    assert history.interrupted and history.epoch == []
    assert m.optimizer.step_count == 4
    assert all(np.isfinite(w).all() for w in m.get_weights())
