"""Fixtures of the benchmark suite. ``NETCORE_BENCH_SIZE=tiny`` shrinks every case to a smoke test."""

from __future__ import annotations

import os

import pytest

from backends import BACKENDS, get_backend
from backends.registry import backend_class

TINY = os.environ.get("NETCORE_BENCH_SIZE", "full") == "tiny"


def _param(name: str):
    return pytest.param(name, marks=[pytest.mark.gpu] if name == "cupy" else [], id=name)


@pytest.fixture(params=[_param(name) for name in BACKENDS])
def backend(request):
    reason = backend_class(request.param).unavailable_reason()
    if reason is not None:
        pytest.skip(f"{request.param} backend unavailable: {reason}")
    return get_backend(request.param)


def timed(benchmark, backend, fn):
    """Benchmark ``fn`` with the device synchronised after every call, so GPU time is counted."""

    def run():
        fn()
        backend.synchronize()

    run()
    if TINY:
        return benchmark.pedantic(run, rounds=1, iterations=1)
    return benchmark(run)
