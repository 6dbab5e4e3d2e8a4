"""Sums over the processes of a data-parallel job without leaving the GPU: NCCL through ``cupy.cuda.nccl``, one
communicator per process and device, its unique id broadcast by the job's own messaging (MPI)."""

from __future__ import annotations

import logging

log = logging.getLogger("netcore")


class NcclSum:
    """``group(array)``: the contiguous device ``array`` summed over every process, in place: one NCCL
    ``allReduce`` queued on the current stream (no host round trip, no synchronisation, recordable in a graph)."""

    def __init__(self, backend, communicator, nccl):
        self.backend, self.communicator, self.nccl = backend, communicator, nccl
        self.types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

    def __call__(self, array):
        stream = self.backend.xp.cuda.get_current_stream()
        pointer = array.data.ptr
        self.communicator.allReduce(
            pointer, pointer, array.size, self.types[array.dtype.name], self.nccl.NCCL_SUM, stream.ptr
        )
        return array


def nccl_group(backend, job):
    """An :class:`NcclSum` for ``job`` (``rank``, ``size``, ``broadcast_object``), or None (logged) where CuPy was
    built without NCCL: the job then sums through host buffers."""
    try:
        from cupy.cuda import nccl
    except ImportError as exc:
        log.info("no NCCL in this CuPy (%s): gradients are summed through host buffers", exc)
        return None
    if not getattr(nccl, "available", True):
        log.info("CuPy's NCCL is not available: gradients are summed through host buffers")
        return None
    unique = job.broadcast_object(nccl.get_unique_id() if job.rank == 0 else None)
    with backend.device:
        return NcclSum(backend, nccl.NcclCommunicator(job.size, unique, job.rank), nccl)
