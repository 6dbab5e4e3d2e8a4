"""Array backends for netcore: one interface (:class:`Backend`), one module per device.

Importing this package imports neither numba nor cupy; a backend's package is imported when the backend is first
asked for.
"""

from backends.base import Backend
from backends.errors import BackendUnavailableError, DeviceError, DTypeError, NetcoreError, ShapeError
from backends.registry import BACKENDS, DeviceInfo, device, devices, get_backend, get_device, resolve, set_device

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailableError",
    "DTypeError",
    "DeviceError",
    "DeviceInfo",
    "NetcoreError",
    "ShapeError",
    "device",
    "devices",
    "get_backend",
    "get_device",
    "resolve",
    "set_device",
]
