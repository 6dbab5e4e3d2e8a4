"""The guard around every public call of a model (:meth:`netcore.trainers.Trainer._guarded`)."""

from __future__ import annotations

from backends.base import NO_SCOPE
from netcore.errors import OutOfMemoryError


class Guard:
    """What :meth:`Trainer._guarded` returns: the backend's device made current, the layers claimed, BLAS on the
    calling thread where layers run blocks on threads, and on an error the model put back. A class rather than a
    generator-based context manager, entering the device scope only where there is one: a predict on one row pays
    for every Python call around its few microseconds of arithmetic."""

    __slots__ = ("model", "mutates", "scope", "before", "cores")

    def __init__(self, model, mutates: bool):
        self.model, self.mutates = model, mutates

    def __enter__(self) -> None:
        model = self.model
        scope = model.backend.scope()
        self.scope = None if scope is NO_SCOPE else scope
        if self.scope is not None:
            self.scope.__enter__()
        try:
            model._claim()
            self.before = model.snapshot() if self.mutates else None
            self.cores = model.backend.owning_cores() if model._splits_batch() else None
            if self.cores is not None:
                self.cores.__enter__()
        except BaseException as error:
            if self.scope is not None:
                self.scope.__exit__(type(error), error, error.__traceback__)
            raise

    def __exit__(self, kind, exc, traceback) -> bool:
        model = self.model
        try:
            if self.cores is not None:
                self.cores.__exit__(kind, exc, traceback)
            if exc is None:
                return False
            if model.built and self.before is not None and self.before["built"]:
                model.restore(self.before)
            if isinstance(exc, model.backend.out_of_memory_errors):
                raise OutOfMemoryError(model._out_of_memory_message(exc)) from exc
            return False
        finally:
            if self.scope is not None:
                self.scope.__exit__(kind, exc, traceback)
