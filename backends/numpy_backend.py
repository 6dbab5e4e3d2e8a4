"""The NumPy backend: the base class's array expressions, run by NumPy on the CPU."""

from __future__ import annotations

import numpy

from backends.base import Backend


class NumpyBackend(Backend):
    """Reference CPU backend. Everything is inherited; only host-only shortcuts are overridden."""

    name = "numpy"
    xp = numpy

    def __init__(self):
        self._ones = {}

    @classmethod
    def unavailable_reason(cls, index: int = 0) -> str | None:
        return None

    def random_into(self, rng, out) -> None:
        # The draws land in the buffer directly; no temporary (same stream as the base version).
        rng.random(out=out, dtype=out.dtype)

    def take_rows(self, x, index, out):
        # The indices come from a permutation of the rows. NumPy's default bounds-checked mode copies through a
        # buffer when given ``out`` (ten times slower for a batch); "clip" gathers straight into ``out``.
        return self.xp.take(x, index, axis=0, out=out, mode="clip")

    def column_sum(self, x, out):
        # A product with a row of ones: BLAS sums a batch's columns three times faster than NumPy's reduction.
        if x.ndim != 2 or not out.flags.c_contiguous or out.dtype != x.dtype:
            return super().column_sum(x, out)
        key = (x.shape[0], x.dtype.str)
        ones = self._ones.get(key)
        if ones is None:
            ones = self._ones[key] = self.xp.ones(x.shape[0], x.dtype)
        return self.xp.dot(ones, x, out=out)
