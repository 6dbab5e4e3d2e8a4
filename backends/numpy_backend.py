"""The NumPy backend: the base class's array expressions, run by NumPy on the CPU."""

from __future__ import annotations

import numpy

from backends.base import Backend


class NumpyBackend(Backend):
    """Reference CPU backend. Everything is inherited; only host-only shortcuts are overridden."""

    name = "numpy"
    xp = numpy

    @classmethod
    def unavailable_reason(cls, index: int = 0) -> str | None:
        return None

    def random_into(self, rng, out) -> None:
        # The draws land in the buffer directly; no temporary (same stream as the base version).
        rng.random(out=out, dtype=out.dtype)
