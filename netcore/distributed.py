"""Data-parallel training over MPI (``mpi4py``, the optional extra ``mpi``): ``mpiexec -n 4 python train.py`` with
``model.fit(X, y, distributed=True)``. No transport of our own: one Allreduce of the model's flat gradient buffer per
step.

Every rank holds the same model: rank 0's weights, optimizer state and generator are broadcast when training
starts, and ranks that disagree on the model or the data are refused on every rank. Every rank shuffles the rows
with the same generator, so each global batch of ``batch_size`` rows is the same everywhere; each rank computes the
gradient of its contiguous share of the batch, weighted by its share of the batch's rows (or sample weight), and
the sum over ranks is the gradient single-process training computes for that batch (also for an uneven last
batch). The optimizer then takes the same step on every rank. The training loss is summed across ranks; metrics and
validation are computed identically on every rank, so ``EarlyStopping``, ``ReduceLROnPlateau`` and the divergence
policy decide the same everywhere (a NaN on one rank gives every rank the same ``DivergenceError``). Callbacks that
write (checkpoints, CSV logs) and progress output run on rank 0 only.

Dropout masks and noise are drawn per rank (each rank draws for its share), and batch norm uses the statistics of
each rank's share unless built with ``BatchNorm(sync=True)``.

On a GPU the sums stay on the device: NCCL (``cupy.cuda.nccl``) with its unique id broadcast over MPI, one
``allReduce`` of the flat gradient buffer per step; give each rank its own GPU (``device=f"cupy:{ctx.local_rank}"``).

Ranks on one machine share its cores: each rank's BLAS and compiled kernels use its share of them
(``NETCORE_THREADS_PER_RANK`` overrides), since one thread per core in every rank would oversubscribe them.

No rank waits forever: every collective gives up after ``timeout`` seconds (``NETCORE_DISTRIBUTED_TIMEOUT``, default
300) with a :class:`~netcore.errors.DistributedError`, and an exception that ends one rank's program ends the whole
job (at once when every rank failed together, through ``MPI_Abort`` when the others are still waiting).
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import pickle
import sys
import time
from dataclasses import dataclass, field

from backends.workers import usable_cores
from netcore.errors import BackendUnavailableError, ConfigurationError, DistributedError

DEFAULT_TIMEOUT = 300.0
#: Seconds an aborting rank waits for its last output to be forwarded before it ends the job.
ABORT_GRACE = 0.5
#: Seconds a rank polls a collective without sleeping (longer waits are a rank at its end-of-epoch work, or dead).
SPIN = 0.05
_CONTEXT = None


@dataclass
class Context:
    """This process's place in the job: ``rank`` of ``size`` on the MPI communicator ``comm``. Collectives run on
    ``comm``; ``control`` (a duplicate) carries only the end-of-job handshake, so it never meets a pending step."""

    comm: object
    rank: int
    size: int
    timeout: float = DEFAULT_TIMEOUT
    control: object = field(default=None, repr=False)
    #: CPU threads each rank's math may use: the machine's cores shared among the ranks running on it.
    threads: int = 1
    #: This rank's place among the ranks on its machine (which GPU to take: ``device=f"cupy:{local_rank}"``).
    local_rank: int = 0
    _device_groups: dict = field(default_factory=dict, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ----------------------------------------------------------------- collectives on host buffers
    def allreduce_sum(self, buffer, what: str = "gradient sum"):
        """``buffer`` (a host array) summed over the ranks, in place."""
        if self.size > 1:
            from mpi4py import MPI

            self._wait(self.comm.Iallreduce(MPI.IN_PLACE, buffer, op=MPI.SUM), what)
        return buffer

    def broadcast(self, buffer, what: str = "broadcast of the model"):
        """Rank 0's ``buffer`` (a host array) on every rank, in place."""
        if self.size > 1:
            self._wait(self.comm.Ibcast(buffer, root=0), what)
        return buffer

    def broadcast_object(self, value, what: str = "broadcast of the model"):
        """Rank 0's ``value`` (anything picklable) on every rank."""
        if self.size == 1:
            return value
        payload = pickle.dumps(value) if self.is_main else b""
        length = self.broadcast(array.array("q", [len(payload)]), what)[0]
        data = self.broadcast(bytearray(payload) if self.is_main else bytearray(length), what)
        return pickle.loads(bytes(data))

    def agree(self, what: str, description: dict) -> None:
        """Refuse, on every rank, a ``description`` (JSON-able) that differs between ranks."""
        if self.size == 1:
            return
        text = json.dumps(description, sort_keys=True, default=str)
        digests = bytearray(32 * self.size)
        self._wait(self.comm.Iallgather(hashlib.sha256(text.encode()).digest(), digests), f"check of the {what}")
        everyone = [bytes(digests[32 * r : 32 * (r + 1)]) for r in range(self.size)]
        differing = [rank for rank, other in enumerate(everyone) if other != everyone[0]]
        if differing:  # every rank saw it, so every rank is here to name what differs
            texts = self.comm.allgather(text)
            first, other = json.loads(texts[0]), json.loads(texts[differing[0]])
            keys = sorted(k for k in set(other) | set(first) if other.get(k) != first.get(k))
            raise ConfigurationError(
                f"the ranks disagree on the {what}: ranks {differing} differ from rank 0 "
                f"({', '.join(keys) or 'details'}); every rank must build the same model and read the same data"
            )

    def _wait(self, request, what: str) -> None:
        """Wait for a nonblocking collective, giving up after ``timeout`` seconds: a rank that died or hangs must
        not keep the others waiting forever. Spins for the first ``SPIN`` seconds (as MPI's blocking calls do: a
        large reduction only advances while both sides poll, so a sleeping rank stalls its partner), then sleeps
        between polls."""
        started = time.monotonic()
        pause = 0.0
        while not request.Test():
            waited = time.monotonic() - started
            if waited > self.timeout:
                raise DistributedError(
                    f"rank {self.rank} of {self.size}: the other ranks did not join the {what} within "
                    f"{self.timeout:g} s; one of them died, hangs, or failed where this rank could not see it "
                    "(NETCORE_DISTRIBUTED_TIMEOUT sets the wait in seconds)"
                )
            if waited > SPIN:
                pause = min(2 * pause or 1e-4, 1e-2)
                time.sleep(pause)

    def device_group(self, backend):
        """The backend's communicator for sums that stay on its device (NCCL on a GPU), made once per device by
        every rank together; None on the CPU, where MPI reduces the arrays in place."""
        key = (backend.name, getattr(backend, "index", 0))
        if key not in self._device_groups:
            self._device_groups[key] = backend.device_collectives(self) if self.size > 1 else None
        return self._device_groups[key]

    # ----------------------------------------------------------------- ending the job
    def failed_together(self, within: float = 5.0) -> bool:
        """After an error on this rank: whether every rank reached this point (they all failed the same way, as with
        a DivergenceError or a disagreement) within ``within`` seconds. If not, the others are still waiting."""
        if self.size == 1:
            return True
        request = self.control.Ibarrier()
        deadline = time.monotonic() + within
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(1e-3)
        return True

    def abort(self, code: int = 1) -> None:
        """End every process of the job now, after what this rank wrote has had a moment to reach ``mpiexec``
        (its output travels through a forwarding process that the abort tears down: an immediate abort can lose
        the error message that explains it)."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE)
        self.comm.Abort(code)


def init(timeout: float | None = None) -> Context:
    """The job's context (idempotent): MPI's world communicator; a process started without ``mpiexec`` is a job of
    size 1. ``timeout`` (seconds) bounds every wait for the other ranks. Without ``mpi4py``, a
    BackendUnavailableError naming the extra to install."""
    global _CONTEXT
    if _CONTEXT is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise BackendUnavailableError(
                f"distributed training needs mpi4py and an MPI library ({exc}); install them with: "
                "pip install 'netcore-nn[mpi]'"
            ) from None
        comm = MPI.COMM_WORLD
        wait = float(os.environ.get("NETCORE_DISTRIBUTED_TIMEOUT", DEFAULT_TIMEOUT))
        machine = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        threads = int(os.environ.get("NETCORE_THREADS_PER_RANK", max(1, usable_cores() // machine.Get_size())))
        _CONTEXT = Context(comm, comm.Get_rank(), comm.Get_size(), wait, comm.Dup(), threads, machine.Get_rank())
        if _CONTEXT.size > 1:
            sys.excepthook = _ending_the_job(sys.excepthook, _CONTEXT)
    if timeout is not None:
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout!r}")
        _CONTEXT.timeout = float(timeout)
    return _CONTEXT


def current() -> Context | None:
    """The context :func:`init` made, or None in a process that has not asked for one."""
    return _CONTEXT


def _ending_the_job(report, ctx: Context):
    """An exception hook: report the error as usual, then make sure no other rank waits for this one."""

    def hook(kind, value, traceback):
        report(kind, value, traceback)
        if not ctx.failed_together():
            ctx.abort(1)

    return hook


# ----------------------------------------------------------------------------------------------- training
def synchronise(model, ctx: Context, rows: int, batch: int, epochs: int, shuffle: bool) -> None:
    """Check that every rank trains the same model on data of the same size, then give every rank rank 0's
    weights, running statistics, optimizer state and generator."""
    description = {
        "layers": model.get_config(),
        "dtype": model.dtype_name,
        "losses": [(head.loss.name, head.loss.config(), head.weight) for head in model.heads],
        "optimizer": (type(model.optimizer).__name__, model.optimizer.hyperparameters()),
        "rows": rows,
        "batch_size": batch,
        "epochs": epochs,
        "shuffle": shuffle,
    }
    ctx.agree("model and data", description)
    if model.normalizes_batches() and batch < 2 * ctx.size:
        raise ConfigurationError(
            f"batch_size {batch} gives some of the {ctx.size} ranks fewer than the 2 rows batch normalisation needs; "
            f"use a batch_size of at least {2 * ctx.size}"
        )
    backend = model.backend
    if ctx.size > 1:
        backend.limit_threads(ctx.threads)
    if len({head.loss.reduction for head in model.heads}) > 1:
        raise ConfigurationError("distributed training needs every output's loss to use one reduction")
    buffers = [model.parameter_buffer, model.state_buffer, *model.optimizer.state.values()]
    for buffer in buffers:
        host = ctx.broadcast(backend.to_numpy(buffer))
        if host is not buffer:  # a device buffer: copy rank 0's values back
            buffer[...] = backend.asarray(host, buffer.dtype)
    model.optimizer.load_scalar_state(ctx.broadcast_object(model.optimizer.scalar_state()))
    backend.set_rng_state(model.rng, ctx.broadcast_object(backend.rng_state(model.rng)))


class DataParallelSteps:
    """What :func:`netcore.trainers.loop.run` calls for each step when training is distributed: the rank's share of each
    global batch, its gradient weighted by that share, and the sum over ranks (one Allreduce)."""

    def __init__(self, model, ctx: Context):
        self.model, self.ctx = model, ctx
        self.on_device = ctx.device_group(model.backend)
        self.fraction = 1.0
        #: The batch loss, then each output's (models with several), summed over the ranks in one call.
        self._losses = array.array("d", [0.0] * (1 + len(model.heads)))

    def bounds(self, rows: int) -> tuple[int, int]:
        """This rank's contiguous share ``[lo, hi)`` of a batch of ``rows`` rows."""
        return rows * self.ctx.rank // self.ctx.size, rows * (self.ctx.rank + 1) // self.ctx.size

    def share(self, index, weights=None):
        """The rows of this rank's share of the global batch ``index`` (rows of the data, or of a streamed block
        whose sample weights are ``weights``); remembers the share's weight in it."""
        lo, hi = self.bounds(index.shape[0])
        if self.model.heads[0].loss.reduction == "sum":
            self.fraction = 1.0  # a sum over the batch is the sum of the shares' sums
        elif weights is None:
            self.fraction = (hi - lo) / index.shape[0]
        else:
            backend = self.model.backend
            total = backend.to_float(weights[index].sum())
            self.fraction = backend.to_float(weights[index[lo:hi]].sum()) / total if total else 0.0
        return index[lo:hi]

    def loss_and_gradients(self, xb, yb, wb):
        """The batch's loss and gradient: each rank's share weighted and summed over the ranks (and each output's
        loss likewise, for the history of a model with several)."""
        model = self.model
        grads = model.gradient_buffer
        losses = self._losses
        if (xb[0] if isinstance(xb, list) else xb).shape[0]:
            losses[0] = model.backend.to_float(model.loss_and_gradients(xb, yb, wb)) * self.fraction
            if len(losses) > 2:
                for k, value in enumerate(model.output_losses, start=1):
                    losses[k] = model.backend.to_float(value) * self.fraction
            if self.fraction != 1.0:
                grads *= self.fraction
        else:  # more ranks than rows in this batch
            losses[:] = array.array("d", [0.0] * len(losses))
            grads[...] = 0
        self.reduce(grads)  # numpy and numba: the buffer itself, reduced in place
        total = self.ctx.allreduce_sum(losses, "loss sum")
        if len(losses) > 2:
            model.output_losses[:] = list(total[1:])
        return total[0]

    def apply_gradients(self) -> None:
        self.model.apply_gradients()

    def reduce(self, array, what: str = "gradient sum"):
        """``array`` (a contiguous array of the model's backend) summed over the ranks, in place (also what
        ``BatchNorm(sync=True)`` reduces its statistics with)."""
        if self.on_device is not None:  # NCCL: queued on the device's stream, no host round trip
            return self.on_device(array)
        backend = self.model.backend
        host = self.ctx.allreduce_sum(backend.to_numpy(array), what)
        if host is not array:
            array[...] = backend.asarray(host, array.dtype)
        return array

    def __enter__(self):
        """While training: synchronised batch-norm layers reduce through this job."""
        for layer in self._synced_layers():
            layer.peers = self
        return self

    def __exit__(self, *exc) -> None:
        for layer in self._synced_layers():
            layer.peers = None

    def _synced_layers(self):
        return [layer for layer in self.model.leaf_layers() if getattr(layer, "sync", False)]
