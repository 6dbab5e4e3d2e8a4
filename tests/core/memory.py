"""How much a repeated training step allocates once warmed up, on the host (tracemalloc, which NumPy reports its
array memory to) and on the CuPy backend's CPU stand-in (its allocation counter)."""

from __future__ import annotations

import tracemalloc


def host_growth(step, warmup: int = 3, repeats: int = 10) -> tuple[int, int]:
    """(peak, lasting) bytes allocated while ``step()`` runs ``repeats`` times after ``warmup`` runs."""
    for _ in range(warmup):
        step()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(repeats):
            step()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - baseline, current - baseline


def stand_in_allocations(step, warmup: int = 3, repeats: int = 5) -> int:
    """Arrays the CuPy stand-in allocated while ``step()`` ran ``repeats`` times after ``warmup`` runs."""
    from tests.backends.cupy_on_cpu import allocations

    for _ in range(warmup):
        step()
    before = allocations()
    for _ in range(repeats):
        step()
    return allocations() - before
