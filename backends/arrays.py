"""Allocation, host transfer, the seeded random generator, matrix products and row gathers."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from backends.errors import DTypeError

FLOAT_DTYPES = ("float32", "float64")


class RowReader:
    """Reads blocks of rows (a memmap slice, an h5py, zarr or Dask block) into new arrays of a backend: the read and
    the conversion to the model's dtype happen in one pass, in whichever thread calls :meth:`load`, and the checks
    that follow run within :meth:`scope`."""

    def __init__(self, backend):
        self.backend = backend

    def scope(self):
        return self.backend.scope()

    def load(self, rows, dtype):
        out = self.backend.empty(tuple(rows.shape), dtype)
        out[...] = np.asarray(rows)
        return out


class ArrayOps:
    """Array plumbing over ``self.xp``; see :class:`backends.base.Backend`."""

    xp: Any = None
    #: Exception types this device raises when it runs out of memory (the model reports them with context).
    out_of_memory_errors: tuple = ()

    # ----------------------------------------------------------------- dtypes and allocation
    def float_dtype(self, name: str):
        """The namespace's dtype object for ``"float32"`` or ``"float64"``."""
        name = str(np.dtype(name)) if not isinstance(name, str) else name
        if name not in FLOAT_DTYPES:
            raise DTypeError(f"netcore computes in float32 or float64, not {name!r}")
        return self.xp.dtype(name)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype=dtype)

    def arange(self, n, dtype="int64"):
        return self.xp.arange(n, dtype=dtype)

    # ----------------------------------------------------------------- host transfer
    def is_native(self, x) -> bool:
        """True when ``x`` is an array of this backend's namespace."""
        return isinstance(x, self.xp.ndarray)

    def asarray(self, x, dtype=None):
        """``x`` (host data or a native array) as a C-contiguous array of this backend, copied only if needed."""
        return self.xp.asarray(x, dtype=dtype, order="C")

    def is_streamable(self, x) -> bool:
        """Whether ``x`` is data to read a block at a time rather than copy in whole: a NumPy memmap, or an array-like
        of NumPy dtype that is not an in-memory array (an h5py or zarr dataset, a Dask array)."""
        if isinstance(x, np.memmap):
            return True
        if isinstance(x, np.ndarray) or self.is_native(x) or self.foreign_device(x) is not None or hasattr(x, "iloc"):
            return False  # in memory already, another device's (the transfer rules apply), or pandas
        return hasattr(x, "shape") and isinstance(getattr(x, "dtype", None), np.dtype)

    def device_collectives(self, job):
        """What sums this device's arrays over the processes of a data-parallel ``job`` (``rank``, ``size``,
        ``broadcast_object``) without leaving the device, or None where host buffers are the arrays themselves (the
        CPU backends: MPI reduces them in place)."""
        return None

    def row_reader(self) -> RowReader:
        """What reads blocks of streamed rows into this backend's arrays, made in the thread that will compute on
        them (the reads themselves may happen in another)."""
        return RowReader(self)

    #: DLPack's device type of the memory this backend computes in (kDLCPU).
    dlpack_device_type = 1

    def from_dlpack(self, x):
        """A view, without a copy, of another library's array (a PyTorch tensor, a JAX array) that implements
        DLPack and lives where this backend computes; None for anything else (the other rules then apply)."""
        if self.is_native(x) or not (hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")):
            return None
        device_type, device_id = x.__dlpack_device__()
        if int(device_type) != self.dlpack_device_type or not self._dlpack_device_matches(int(device_id)):
            return None
        try:
            return self.xp.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError):  # e.g. a tensor that requires grad: not exported
            return None

    def _dlpack_device_matches(self, device_id: int) -> bool:
        return True

    def device_of(self, x) -> str | None:
        """For a native array on another device of this backend (another GPU), that device's name; else None."""
        return None

    def foreign_device(self, x) -> str | None:
        """For an array that lives on a device this backend cannot read directly, a name for it; else None."""
        if hasattr(x, "__cuda_array_interface__"):
            return f"a CUDA device ({type(x).__module__.split('.')[0]} array)"
        return None

    def from_foreign(self, x):
        """Copy another device's array into this backend (the ``auto_transfer=True`` path)."""
        for host in ("get", "cpu"):  # cupy arrays have .get(); torch tensors .cpu()
            if hasattr(x, host):
                x = getattr(x, host)()
                break
        return self.asarray(np.asarray(x))

    def to_numpy(self, x) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of a native array."""
        return np.asarray(x)

    def to_float(self, x) -> float:
        """A 0-d array or number as a Python float (synchronises on a GPU)."""
        return float(x)

    def limit_threads(self, count: int) -> None:
        """Let this process's host math (BLAS, compiled kernels) use at most ``count`` threads: processes that share
        a machine's cores (ranks of a distributed job) must not each start one thread per core."""
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=count)

    # ----------------------------------------------------------------- blocks of a batch on several cores
    #: How many threads :meth:`map_blocks` spreads a layer's blocks over; a layer cuts its batch into at least this
    #: many blocks. 1: every block on the calling thread.
    block_threads = 1

    def map_blocks(self, function, count: int) -> None:
        """``function(lane, index)`` for every block ``index`` in ``range(count)`` of a layer's batch: independent
        work writing disjoint outputs. ``lane`` names the thread running it (``index % block_threads``), so a block
        may use scratch keyed by its lane without meeting another block running at the same time."""
        for index in range(count):
            function(0, index)

    def owning_cores(self):
        """A context for a call whose layers run blocks on :attr:`block_threads` threads: those threads have the
        cores to themselves (a no-op here, where blocks run on the calling thread)."""
        return contextlib.nullcontext()

    def memory_info(self) -> tuple[int, int]:
        """(bytes in use, bytes in total) on the device; (0, 0) where nobody counts (host memory)."""
        return 0, 0

    def is_finite(self, value) -> bool:
        """Whether a scalar (a Python number or a 0-d array of this backend) is finite; synchronises a GPU."""
        return math.isfinite(float(value))

    def accumulate(self, total, value, weight):
        """``total + value * weight``: how the training loop sums batch losses (a GPU keeps the sum on the device)."""
        return total + value * weight

    def capture_unsupported(self) -> str | None:
        """Why this device cannot record a training step and replay it as a whole, or None where it can."""
        return f"the {self.name} backend has no step capture (CUDA graphs need the cupy backend)"

    def capture(self, step):
        """Where :meth:`capture_unsupported` is None: run ``step`` once, then record it for replay as a whole (a
        CUDA graph); ``(replay, None)``, or ``(None, reason)`` if the device refused the recording. Elsewhere
        ``(None, reason)`` without running ``step``."""
        return None, self.capture_unsupported()

    def copy(self, x):
        return self.xp.array(x, copy=True)

    def all_finite(self, x) -> bool:
        """True when ``x`` holds no NaN or infinity (min and max propagate both; two passes, no temporary)."""
        if x.size == 0:
            return True
        return bool(self.xp.isfinite(x.min()) and self.xp.isfinite(x.max()))

    # ----------------------------------------------------------------- the seeded generator
    # Draws happen on the host with NumPy's PCG64 and are then copied to the device, so one seed gives the same
    # weights, shuffles and dropout masks on every backend. A GPU backend may override the bulk draws.
    def rng(self, seed: int | None):
        """A new generator; the model keeps it and passes it back to the drawing kernels."""
        return np.random.Generator(np.random.PCG64(seed))

    def rng_state(self, rng) -> dict:
        """The generator's state as plain JSON-able data (for checkpoints)."""
        return rng.bit_generator.state

    def set_rng_state(self, rng, state: dict) -> None:
        rng.bit_generator.state = state

    def random_normal(self, rng, shape, mean: float, std: float, dtype):
        """Normal draws as float64 on the host, rounded once to ``dtype`` (identical on every backend)."""
        return self.asarray(rng.normal(mean, std, size=shape), dtype=dtype)

    def random_uniform(self, rng, shape, low: float, high: float, dtype):
        return self.asarray(rng.uniform(low, high, size=shape), dtype=dtype)

    def random_orthogonal(self, rng, shape, gain: float, dtype):
        """A matrix with orthonormal rows or columns (whichever are fewer), times ``gain``: the QR factor of a normal
        draw with its signs fixed by R's diagonal, drawn on the host (Keras's Orthogonal, and PyTorch's
        ``orthogonal_``). Axes before the last are flattened into rows."""
        rows, columns = math.prod(shape[:-1]), shape[-1]
        draw = rng.normal(0.0, 1.0, size=(max(rows, columns), min(rows, columns)))
        q, r = np.linalg.qr(draw)
        q *= np.sign(np.diag(r))
        if rows < columns:
            q = q.T
        return self.asarray(gain * q.reshape(shape), dtype=dtype)

    def permutation(self, rng, n: int):
        return self.asarray(rng.permutation(n))

    def random_into(self, rng, out) -> None:
        """Fill ``out`` with uniform [0, 1) draws of its own dtype."""
        host = rng.random(out.shape, dtype=np.dtype(str(out.dtype)))
        out[...] = self.asarray(host)

    # ----------------------------------------------------------------- products and gathers
    def matmul(self, a, b, out=None):
        """``a @ b`` written into ``out`` when given (callers pass ``.T`` views for transposed operands)."""
        return self.xp.matmul(a, b, out=out)

    def column_sum(self, x, out):
        """``out[j] = sum_i x[i, j]`` (bias gradients)."""
        return self.xp.sum(x, axis=0, out=out)

    def take_rows(self, x, index, out):
        """``out[k] = x[index[k]]``: gathers a shuffled batch into a preallocated buffer."""
        return self.xp.take(x, index, axis=0, out=out)

    def scatter_add_rows(self, src, index, out):
        """``out = 0``, then ``out[index[k]] += src[k]`` for every ``k`` in order (the adjoint of
        :meth:`take_rows`: an embedding table's gradient, where a repeated index adds)."""
        out[...] = 0
        self.xp.add.at(out, index, src)
        return out

    def sum_squares(self, x) -> Any:
        return self.xp.vdot(x.ravel(), x.ravel())

    def sum_abs(self, x) -> Any:
        return self.xp.abs(x).sum()
