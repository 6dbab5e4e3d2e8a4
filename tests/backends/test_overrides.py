"""Overrides keep the base signature, and each inherited fallback gives the override's result."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from backends import BACKENDS, Backend
from backends.registry import backend_class
from tests.backends.kernel_cases import CASES, DEVICE_RANDOM, METHOD_CASES
from tests.backends.test_parity import TOLERANCE
from tests.conftest import require

# The methods of a backend that are part of the shared interface (not its own plumbing such as __init__).
INTERFACE = {name for name, value in inspect.getmembers(Backend) if callable(value) and not name.startswith("__")}


def own_classes(cls) -> list[type]:
    """``cls`` and the kernel mixins it is made of (a backend's helper classes), not the backends it extends."""
    before_base = cls.__mro__[: cls.__mro__.index(Backend)]
    return [c for c in before_base if c is cls or not issubclass(c, Backend)]


def overrides(cls) -> list[str]:
    """Interface methods ``cls`` (or one of its own mixins) defines, overriding an inherited version."""
    names = {name for c in own_classes(cls) for name in vars(c)}
    return sorted(name for name in names if name in INTERFACE and not name.startswith("_"))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_overrides_keep_the_base_signature(name):
    try:
        cls = backend_class(name)
    except ImportError as exc:
        pytest.skip(f"{name}: {exc}")
    for method in overrides(cls):
        base = inspect.signature(getattr(Backend, method))
        mine = inspect.signature(getattr(cls, method))
        assert list(mine.parameters) == list(base.parameters), f"{cls.__name__}.{method}"
        for p_mine, p_base in zip(mine.parameters.values(), base.parameters.values(), strict=True):
            assert (p_mine.kind, p_mine.default) == (p_base.kind, p_base.default), f"{cls.__name__}.{method}"


# Device plumbing: the inherited version cannot work on another device's arrays, so it has no fallback to compare.
PLUMBING = {
    "unavailable_reason",
    "scope",
    "synchronize",
    "to_numpy",
    "asarray",
    "erfc",
    "device_of",
    "foreign_device",
    "from_foreign",
    "memory_info",
    "capture",
    "capture_unsupported",
    "limit_threads",
    "owning_cores",
    "dlpack_device_type",
    "device_collectives",
    "row_reader",  # checked by tests/training/test_streaming.py
    "_dlpack_device_matches",
}


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_override_has_a_kernel_case(name):
    """Checked on every machine (importing a backend module needs no device), so a GPU-only override without a
    parity case is caught before a GPU session runs."""
    missing = [m for m in overrides(backend_class(name)) if m not in PLUMBING and m not in METHOD_CASES]
    assert not missing, f"{name} overrides {missing} but no case in kernel_cases exercises them"


def _without(backend, method):
    """A copy of ``backend`` whose ``method`` is the one its class inherits (the override switched off)."""
    cls = type(backend)
    owner = next(c for c in cls.__mro__ if method in vars(c))
    parent = next(c for c in cls.__mro__[cls.__mro__.index(owner) + 1 :] if method in vars(c))
    clone = object.__new__(cls)
    clone.__dict__.update(backend.__dict__)
    setattr(clone, method, getattr(parent, method).__get__(clone, cls))
    return clone


def _override_params():
    for name in BACKENDS:
        marks = [pytest.mark.gpu] if name == "cupy" else []
        try:
            methods = overrides(backend_class(name))
        except ImportError:
            methods = ["*unimportable*"]
        for method in methods:
            if method in PLUMBING:
                continue
            yield pytest.param(name, method, marks=marks, id=f"{name}.{method}")


@pytest.mark.parametrize(("name", "method"), list(_override_params()))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fallback_matches_override(name, method, dtype):
    backend = require(name)
    assert method in METHOD_CASES, f"{name}.{method} overrides a kernel but no case in kernel_cases exercises it"
    fallback = _without(backend, method)
    for case_name in METHOD_CASES[method]:
        if case_name in DEVICE_RANDOM and name == "cupy":
            continue
        for contiguous in (True, False):
            n, c = (7, 5)
            with_override = CASES[case_name](backend, np.random.default_rng(1), n, c, dtype, contiguous)
            inherited = CASES[case_name](fallback, np.random.default_rng(1), n, c, dtype, contiguous)
            assert all(x is not None for x in inherited), f"{case_name}: the fallback returned nothing"
            for got, want in zip(with_override, inherited, strict=True):
                np.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=f"{name}.{method} / {case_name}")


@pytest.mark.parametrize("method", ["bias_activation", "activation_backward", "softmax_cross_entropy"])
def test_fallback_results_are_returned(other_backend, method):
    """A fallback path that forgets ``return`` hands back None; the kernels' callers rely on the result."""
    rng = np.random.default_rng(0)
    z = other_backend.asarray(rng.standard_normal((4, 6)).astype("float32"))
    strided = other_backend.asarray(rng.standard_normal((4, 12)).astype("float32"))[:, ::2]
    if method == "bias_activation":
        assert other_backend.bias_activation(strided, None, "relu", 0.0, strided) is not None
        assert other_backend.bias_activation(z, None, "softmax", 0.0, other_backend.empty((4, 6), z.dtype)) is not None
    elif method == "activation_backward":
        assert other_backend.activation_backward(strided, z, None, "relu", 0.0, strided) is not None
    else:
        onehot = other_backend.asarray(np.eye(6, dtype="float32")[[0, 1, 2, 3]])
        assert other_backend.softmax_cross_entropy(z, onehot, other_backend.empty((4, 6), z.dtype), 0.25) is not None
