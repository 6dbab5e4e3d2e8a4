"""Fault injection: damaged checkpoints (every byte flipped, truncation at many lengths), a save killed mid-way,
NaN mid-training under each on_nonfinite policy."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import netcore
from netcore import callbacks
from netcore.layers import Dense
from tests.robustness.fingerprint import fingerprint


def small_model():
    model = netcore.Sequential([Dense(3, "tanh"), Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile("adam", "cross_entropy")
    model.train_on_batch(np.ones((4, 2)), np.array([0, 1, 0, 1]))
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "small.ncz"
    small_model().save(path)
    return path


def test_every_flipped_byte_is_caught_or_harmless(checkpoint, tmp_path):
    """A flip anywhere either raises CheckpointError or lands in bytes that do not matter (zip timestamps, ...):
    never a different model, never another exception."""
    original = checkpoint.read_bytes()
    reference = fingerprint(netcore.load(checkpoint))
    damaged = tmp_path / "d.ncz"
    outcomes = {"rejected": 0, "harmless": 0}
    for position in range(len(original)):
        blob = bytearray(original)
        blob[position] ^= 0xFF
        damaged.write_bytes(bytes(blob))
        try:
            loaded = netcore.load(damaged)
        except netcore.CheckpointError:
            outcomes["rejected"] += 1
            continue
        assert fingerprint(loaded) == reference, f"flipping byte {position} changed the model silently"
        outcomes["harmless"] += 1
    assert outcomes["rejected"] > 0.9 * len(original), outcomes


def test_truncation_at_every_length_is_rejected(checkpoint, tmp_path):
    original = checkpoint.read_bytes()
    damaged = tmp_path / "t.ncz"
    for length in range(0, len(original), 3):
        damaged.write_bytes(original[:length])
        with pytest.raises(netcore.CheckpointError):
            netcore.load(damaged)


def test_a_killed_save_never_leaves_a_half_written_file(tmp_path):
    target = tmp_path / "big.ncz"
    script = f"""
import netcore
from netcore.layers import Dense
model = netcore.Sequential([Dense(2000, "relu"), Dense(10)], input_dim=1000, device="numpy", seed=0)
model.compile("adam", "mse")
print("ready", flush=True)
while True:
    model.save({str(target)!r})
"""
    for delay in (0.05, 0.2, 0.45):
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if target.exists():  # the target is either absent or a complete, valid checkpoint
            assert netcore.load(target).count_params() == 1000 * 2000 + 2000 + 2000 * 10 + 10
    leftovers = [p.name for p in pathlib.Path(tmp_path).iterdir() if p.name != "big.ncz"]
    assert all(name.startswith(".ncz-") for name in leftovers)  # only temporary files, never the target name


class Poison(callbacks.Callback):
    """Turns one batch's loss into NaN (a NaN weight for that batch only)."""

    def __init__(self, model, epoch, batch):
        super().__init__()
        self.target, self.epoch, self.batch, self.current = model, epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            self.saved = float(self.target.layers[0].params["W"][0, 0])
            self.target.layers[0].params["W"][0, 0] = np.nan

    def on_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            self.target.layers[0].params["W"][0, 0] = self.saved


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 2))
    return X, (X[:, 0] > 0).astype(int)


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_nan_under_raise_leaves_the_model_as_before_fit(device):
    model = netcore.Sequential([Dense(4, "tanh"), Dense(2, "softmax")], input_dim=2, device=device, seed=0)
    model.compile("sgd", "cross_entropy")
    X, y = data()
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    before = fingerprint(model)
    with pytest.raises(netcore.DivergenceError, match=r"epoch 2, batch 3.*first non-finite gradient: dense\.W"):
        model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[Poison(model, 1, 2)])
    assert fingerprint(model) == before


def test_nan_under_skip_batch_drops_only_that_step():
    model = netcore.Sequential([Dense(4, "tanh"), Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile("sgd", "cross_entropy")
    X, y = data()
    history = model.fit(
        X, y, epochs=2, batch_size=16, verbose=0, on_nonfinite="skip_batch", callbacks=[Poison(model, 0, 1)]
    )
    assert history.skipped_batches == 1 and model.optimizer.step_count == 7
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_nan_under_ignore_takes_the_step_as_pytorch_does():
    model = netcore.Sequential([Dense(4, "tanh"), Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile("sgd", "cross_entropy")
    X, y = data()
    poison = Poison(model, 0, 1)
    poison.on_batch_end = lambda batch, logs=None: None  # the NaN stays: the step spreads it
    history = model.fit(X, y, epochs=1, batch_size=16, verbose=0, on_nonfinite="ignore", callbacks=[poison])
    assert model.optimizer.step_count == 4 and np.isnan(history["loss"][0])
    assert not all(np.isfinite(w).all() for w in model.get_weights())


def test_nan_under_rollback_goes_back_one_epoch_and_halves_the_learning_rate():
    model = netcore.Sequential([Dense(4, "tanh"), Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile(netcore.optimizers.SGD(lr=0.2), "cross_entropy")
    X, y = data()
    history = model.fit(
        X, y, epochs=4, batch_size=16, verbose=0, on_nonfinite="rollback", callbacks=[Poison(model, 2, 1)]
    )
    assert history.rollbacks == 1 and model.optimizer.lr == pytest.approx(0.1)
    assert history.epoch == [0, 1, 3] and model.epochs_trained == 3
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_rollback_gives_up_after_its_limit():
    model = netcore.Sequential([Dense(4, "tanh"), Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile("sgd", "cross_entropy")
    X, y = data()
    before = fingerprint(model)
    poisons = [Poison(model, epoch, 0) for epoch in range(1, 6)]
    with pytest.raises(netcore.DivergenceError, match="after 3 rollbacks"):
        model.fit(X, y, epochs=6, batch_size=16, verbose=0, on_nonfinite="rollback", callbacks=poisons)
    assert fingerprint(model) == before
