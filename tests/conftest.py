"""Shared fixtures: one ``backend`` fixture over every registered backend (cupy cases marked ``gpu``)."""

from __future__ import annotations

import pytest

from backends import BACKENDS, get_backend
from backends.registry import backend_class


def _backend_param(name: str):
    marks = [pytest.mark.gpu] if name == "cupy" else []
    return pytest.param(name, marks=marks, id=name)


ALL_BACKENDS = [_backend_param(name) for name in BACKENDS]
#: Also the CuPy backend's own code on the CPU (its kernels compiled as host C++), so it is checked without a GPU.
OTHER_BACKENDS = [_backend_param(name) for name in BACKENDS if name != "numpy"] + ["cupy-on-cpu"]


def require(name: str):
    """The backend called ``name``, or a skip naming why it cannot run here."""
    reason = backend_class(name).unavailable_reason()
    if reason is not None:
        pytest.skip(f"{name} backend unavailable: {reason}")
    return get_backend(name)


@pytest.fixture(params=ALL_BACKENDS + ["cupy-on-cpu"])
def backend(request):
    """Every backend that can run here; the others skip with their reason."""
    yield from _backend(request.param)


@pytest.fixture(params=OTHER_BACKENDS)
def other_backend(request):
    """Every backend but the NumPy reference, for parity tests against it."""
    yield from _backend(request.param)


@pytest.fixture(params=[_backend_param("cupy"), "cupy-on-cpu"])
def cupy_backend(request):
    """The CuPy backend on a GPU (marked ``gpu``) and on the CPU stand-in."""
    yield from _backend(request.param)


def _backend(name: str):
    if name != "cupy-on-cpu":
        yield require(name)
        return
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    with cupy_on_cpu() as backend:
        yield backend


@pytest.fixture
def numpy_backend():
    return get_backend("numpy")


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
