"""Array backends for netcore: one interface (:class:`Backend`), one module per device.

Importing this package imports neither numba nor cupy; a backend's package is imported when the backend is first
asked for.
"""

from backends.base import Backend
from backends.errors import (
    BackendUnavailableError,
    ConfigurationError,
    DeviceError,
    DTypeError,
    NetcoreError,
    ShapeError,
)
from backends.registry import (
    BACKENDS,
    DeviceInfo,
    device,
    devices,
    get_backend,
    get_device,
    get_matmul_precision,
    resolve,
    set_device,
    set_matmul_precision,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailableError",
    "ConfigurationError",
    "DTypeError",
    "DeviceError",
    "DeviceInfo",
    "NetcoreError",
    "ShapeError",
    "device",
    "devices",
    "get_backend",
    "get_device",
    "get_matmul_precision",
    "resolve",
    "set_device",
    "set_matmul_precision",
]
