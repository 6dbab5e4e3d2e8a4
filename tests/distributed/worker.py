"""One rank of the distributed tests, run as ``mpiexec -n N python worker.py SCENARIO DEVICE OUT`` (or alone, as a job
of one process). Each scenario prints one line per rank that the tests read."""

from __future__ import annotations

import os
import pathlib
import sys
import time

import numpy as np

import netcore
from netcore.callbacks import Callback, CSVLogger, ModelCheckpoint
from netcore.layers import BatchNorm, Dense, Dropout


def model(device: str, hidden: int = 32, **layers) -> netcore.Sequential:
    """float64, L2 and a momentum optimizer: every piece of state a step carries."""
    net = netcore.Sequential(
        [
            Dense(hidden, "tanh", kernel_regularizer=netcore.regularizers.L2(1e-4)),
            *layers.get("extra", []),
            Dense(10, "softmax"),
        ],
        input_dim=64,
        device=device,
        dtype="float64",
        seed=int(os.environ.get("WORKER_MODEL_SEED", 0)),
    )
    return net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy", ["accuracy"])


def digits():
    data = netcore.datasets.load("digits", seed=0)
    weights = np.linspace(0.5, 1.5, len(data.y_train))
    return data, weights


def train(device: str, out: str, ctx) -> None:
    """Three epochs of uneven batches (1437 rows in batches of 37) with sample weights and writing callbacks."""
    data, weights = digits()
    net = model(device)
    callbacks = [CSVLogger(os.path.join(out, "log.csv")), ModelCheckpoint(os.path.join(out, "best.ncz"))]
    history = net.fit(
        data.X_train,
        data.y_train,
        epochs=3,
        batch_size=37,
        sample_weight=weights,
        validation_data=(data.X_test, data.y_test),
        callbacks=callbacks,
        verbose=0,
        distributed=True,
    )
    np.savez(os.path.join(out, f"rank{ctx.rank}.npz"), *net.get_weights(), loss=np.array(history["loss"]))
    print(f"rank {ctx.rank} of {ctx.size}: trained", flush=True)


class _Poison(Callback):
    """On rank 1 only, after some steps: a weight becomes NaN, so that rank's next loss is NaN."""

    def on_batch_end(self, step, logs):
        if netcore.distributed.current().rank == 1 and self.model.epochs_trained == 1 and step == 3:
            self.model.layers[0].params["W"][0, 0] = float("nan")


def nan_on_one_rank(device: str, out: str, ctx) -> None:
    data, _ = digits()
    try:
        model(device).fit(
            data.X_train, data.y_train, epochs=3, batch_size=64, verbose=0, callbacks=[_Poison()], distributed=True
        )
    except netcore.DivergenceError as exc:
        print(f"rank {ctx.rank}: DivergenceError: {exc}", flush=True)


class _Die(Callback):
    """Rank 1 leaves in the second epoch: crashes, exits, hangs, or raises an exception nobody catches."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how

    def on_epoch_end(self, epoch, logs):
        if epoch != 1 or netcore.distributed.current().rank != 1:
            return
        if self.how == "crash":
            os._exit(3)
        if self.how == "exit":
            sys.exit(0)
        if self.how == "hang":
            time.sleep(600)
        raise RuntimeError("rank 1 fails alone")


def dead_rank(device: str, out: str, ctx, how: str) -> None:
    data, _ = digits()
    netcore.distributed.init(timeout=3)
    model(device).fit(
        data.X_train, data.y_train, epochs=5, batch_size=64, verbose=0, callbacks=[_Die(how)], distributed=True
    )
    print(f"rank {ctx.rank}: finished", flush=True)


def disagree(device: str, out: str, ctx) -> None:
    data, _ = digits()
    try:
        model(device, hidden=32 + ctx.rank).fit(data.X_train, data.y_train, epochs=1, verbose=0, distributed=True)
    except netcore.ConfigurationError as exc:
        print(f"rank {ctx.rank}: ConfigurationError: {exc}", flush=True)


def batchnorm(device: str, out: str, ctx) -> None:
    """Synchronised batch norm: the statistics of the whole batch, as one process computes them."""
    data, _ = digits()
    net = model(device, extra=[BatchNorm(sync=True), Dropout(0.0)])
    net.fit(data.X_train, data.y_train, epochs=2, batch_size=40, verbose=0, distributed=True)
    statistics = [net.backend.to_numpy(array) for array in net.layers[1].state.values()]
    np.savez(os.path.join(out, f"rank{ctx.rank}.npz"), *net.get_weights(), *statistics)
    print(f"rank {ctx.rank} of {ctx.size}: trained", flush=True)


def nccl(device: str, out: str, ctx) -> None:
    """The cupy backend on the CPU stand-in, whose NCCL sums over MPI: gradients and synchronised batch-norm
    statistics go through the device communicator."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    from tests.backends.cupy_on_cpu import cupy_on_cpu

    data, weights = digits()
    with cupy_on_cpu() as backend:
        net = model(backend, extra=[BatchNorm(sync=True)])
        net.fit(data.X_train, data.y_train, epochs=2, batch_size=40, sample_weight=weights, verbose=0, distributed=True)
        np.savez(os.path.join(out, f"rank{ctx.rank}.npz"), *net.get_weights())
        calls = backend.xp.cuda.nccl.NcclCommunicator.calls
    print(f"rank {ctx.rank} of {ctx.size}: trained with {calls} NCCL sums", flush=True)


def graph(device: str, out: str, ctx) -> None:
    """A functional model: the digits' top and bottom halves as two inputs through one shared layer, a residual sum,
    synchronised batch norm, and two outputs (the class, and the mean ink as a regression)."""
    data, weights = digits()
    top, bottom = netcore.Input((32,), name="top"), netcore.Input((32,), name="bottom")
    shared = Dense(24, "tanh")
    h = netcore.layers.Add()([shared(top), shared(bottom)])
    h = netcore.layers.Activation("relu")(BatchNorm(sync=True)(Dense(24, use_bias=False)(h)))
    net = netcore.Model(
        [top, bottom],
        {"digit": Dense(10, "softmax")(h), "ink": Dense(1)(h)},
        device=device,
        dtype="float64",
        seed=0,
    )
    net.compile(netcore.optimizers.Adam(lr=1e-2), {"digit": "cross_entropy", "ink": "mse"}, loss_weights=[1, 0.5])
    X = {"top": data.X_train[:, :32], "bottom": data.X_train[:, 32:]}
    y = {"digit": data.y_train, "ink": data.X_train.mean(axis=1, keepdims=True)}
    history = net.fit(X, y, epochs=2, batch_size=40, sample_weight=weights, verbose=0, distributed=True)
    np.savez(os.path.join(out, f"rank{ctx.rank}.npz"), *net.get_weights(), loss=np.array(history["ink_loss"]))
    print(f"rank {ctx.rank} of {ctx.size}: trained", flush=True)


SCENARIOS = {
    "train": train,
    "graph": graph,
    "nan": nan_on_one_rank,
    **{how: lambda *a, how=how: dead_rank(*a, how) for how in ("crash", "exit", "hang", "raise")},
    "disagree": disagree,
    "batchnorm": batchnorm,
    "nccl": nccl,
}

if __name__ == "__main__":
    scenario, device, out = sys.argv[1:4]
    SCENARIOS[scenario](device, out, netcore.distributed.init())
