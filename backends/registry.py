"""Backend names, aliases, availability, and the current device.

A backend is named by its module and class in :data:`BACKENDS`; adding one is adding a module and a line here.
The current device is a context variable (so ``with device(...)`` is thread- and asyncio-safe) on top of a
process-wide default that :func:`set_device` changes and ``NETCORE_DEVICE`` seeds.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import importlib
import logging
import os
import threading
from dataclasses import dataclass

from backends.base import Backend
from backends.errors import BackendUnavailableError, ConfigurationError, DeviceError

log = logging.getLogger("netcore")

#: Canonical backend names and where their classes live, in order of preference on the CPU.
BACKENDS = {
    "numpy": ("backends.numpy_backend", "NumpyBackend"),
    "numba": ("backends.numba_backend", "NumbaBackend"),
    "cupy": ("backends.cupy_backend", "CupyBackend"),
}
#: Aliases that name one backend; ``cpu`` and ``auto`` are resolved by availability instead.
ALIASES = {"cuda": "cupy", "gpu": "cupy"}
_CHOOSERS = {"cpu": ("numba", "numpy"), "auto": ("cupy", "numba", "numpy")}

_instances: dict[str, Backend] = {}
_lock = threading.Lock()
_default: str | None = None
#: Values of :func:`set_matmul_precision`, named as in PyTorch's ``set_float32_matmul_precision``.
MATMUL_PRECISIONS = ("highest", "high")
_matmul_precision = "highest"
_current: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("netcore_device", default=None)


@dataclass(frozen=True)
class DeviceInfo:
    """One row of :func:`devices`."""

    name: str
    available: bool
    reason: str | None


def backend_class(name: str) -> type[Backend]:
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def _split(name: str) -> tuple[str, int]:
    """``"cupy:1"`` -> ``("cupy", 1)``; validates the name, suggesting the closest valid one."""
    if not isinstance(name, str):
        raise DeviceError(f"a device name must be a string, not {type(name).__name__}")
    base, _, index = name.strip().lower().partition(":")
    base = ALIASES.get(base, base)
    known = list(BACKENDS) + list(ALIASES) + list(_CHOOSERS)
    if base not in BACKENDS and base not in _CHOOSERS:
        close = difflib.get_close_matches(base, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DeviceError(f"unknown device {name!r}{hint} (valid: {', '.join(known)}, cupy:N)")
    if index and (base != "cupy" or not index.isdigit()):
        raise DeviceError(f"unknown device {name!r}: only cupy takes a device index, as in 'cupy:1'")
    return base, int(index or 0)


def _unavailable(base: str, index: int) -> str | None:
    return backend_class(base).unavailable_reason(index)


def resolve(name: str) -> str:
    """The canonical backend name a device name stands for (aliases and ``cpu``/``auto`` resolved)."""
    base, index = _split(name)
    if base in _CHOOSERS:
        for candidate in _CHOOSERS[base]:
            if _unavailable(candidate, 0) is None:
                if base == "auto":
                    log.info("device 'auto' chose the %s backend", candidate)
                return candidate
        raise BackendUnavailableError(f"no backend for {name!r} can run here")  # numpy always can
    return base if index == 0 else f"{base}:{index}"


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend instance for a device name (or the current device for None); raises if it cannot run."""
    if isinstance(name, Backend):
        return name
    if name is None:
        return get_device()
    canonical = resolve(name)
    with _lock:
        if canonical not in _instances:
            base, index = _split(canonical)
            reason = _unavailable(base, index)
            if reason is not None:
                raise BackendUnavailableError(f"backend {canonical!r} is unavailable: {reason}")
            cls = backend_class(base)
            instance = cls(index) if base == "cupy" else cls()
            instance.matmul_precision = _matmul_precision
            _instances[canonical] = instance
        return _instances[canonical]


def set_matmul_precision(precision: str) -> None:
    """How every backend, now and later, rounds float32 matrix products: ``"highest"`` (the default: true
    float32, what the PyTorch oracle tests compare against) or ``"high"`` (TF32 tensor cores on GPUs that have
    them: about 8x the float32 GEMM rate on an H100, with a 10-bit mantissa in the products' inputs). The CPU
    backends compute in float32 either way; float64 products are never affected; a step already recorded with
    ``compile_step`` keeps the precision it was recorded with."""
    global _matmul_precision
    if precision not in MATMUL_PRECISIONS:
        raise ConfigurationError(f"matmul precision must be one of {', '.join(MATMUL_PRECISIONS)}, not {precision!r}")
    with _lock:
        _matmul_precision = precision
        for instance in _instances.values():
            instance.matmul_precision = precision


def get_matmul_precision() -> str:
    """The value last given to :func:`set_matmul_precision` (``"highest"`` by default)."""
    return _matmul_precision


def devices() -> list[DeviceInfo]:
    """Every backend with whether it can run here and, when not, why."""
    rows = []
    for name in BACKENDS:
        reason = _unavailable(name, 0)
        rows.append(DeviceInfo(name, reason is None, reason))
    return rows


def set_device(name: str) -> Backend:
    """Make ``name`` the process-wide default device (checked now: an unusable backend raises here)."""
    global _default
    backend = get_backend(name)
    _default = backend.name
    return backend


def get_device() -> Backend:
    """The active backend: the innermost ``with device(...)``, else :func:`set_device`'s, else ``NETCORE_DEVICE``
    (default ``auto``)."""
    current = _current.get()
    if current is not None:
        return current
    return get_backend(_default or os.environ.get("NETCORE_DEVICE") or "auto")


@contextlib.contextmanager
def device(name: str):
    """``with device("numba"):`` makes a backend current for this thread or task only."""
    token = _current.set(get_backend(name))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
