"""netcore's error hierarchy (the backend-level classes live in :mod:`backends.errors` and are re-exported here)."""

from backends.errors import (
    BackendUnavailableError,
    ConfigurationError,
    DeviceError,
    DTypeError,
    NetcoreError,
    OutOfMemoryError,
    ShapeError,
)


class CheckpointError(NetcoreError, ValueError):
    """A checkpoint file is missing, corrupt, or not a netcore checkpoint."""


class DivergenceError(NetcoreError, RuntimeError):
    """Training produced a non-finite loss or gradient."""


class DataError(NetcoreError, ValueError):
    """Data that cannot be read or is not what it claims to be: a missing or malformed data file, an image that does
    not decode, a folder without images."""


class DistributedError(NetcoreError, RuntimeError):
    """The processes of a distributed job lost each other: a rank died, hung or failed where the others could not
    see it."""


__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "ConfigurationError",
    "DTypeError",
    "DataError",
    "DeviceError",
    "DistributedError",
    "DivergenceError",
    "NetcoreError",
    "OutOfMemoryError",
    "ShapeError",
]
