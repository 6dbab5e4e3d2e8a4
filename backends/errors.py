"""The error hierarchy shared by the backends and the network core.

Every error netcore raises on purpose derives from :class:`NetcoreError` and from the built-in exception an
ordinary ``except`` clause would expect, so ``except ValueError`` still catches a bad shape.
"""


class NetcoreError(Exception):
    """Base class of every error netcore raises on purpose."""

    def __init_subclass__(cls, **kwargs):
        # Shown (and pickled) under the name users import: netcore.ShapeError, not backends.errors.ShapeError.
        super().__init_subclass__(**kwargs)
        if cls.__module__ in ("backends.errors", "netcore.errors"):
            cls.__module__ = "netcore"


NetcoreError.__module__ = "netcore"


class BackendUnavailableError(NetcoreError, RuntimeError):
    """A backend was asked for but cannot run here; the message names the cause and the fix."""


class DeviceError(NetcoreError, ValueError):
    """An unknown device name, or an array that lives on another device than the model."""


class ConfigurationError(NetcoreError, ValueError):
    """A model, layer, optimizer or setting was given an invalid value (unknown name, rate out of range, ...)."""


class ShapeError(NetcoreError, ValueError):
    """An array has the wrong shape for the layer, loss or model it was given to."""


class DTypeError(NetcoreError, TypeError):
    """An array has a dtype netcore cannot compute with."""


class OutOfMemoryError(NetcoreError, MemoryError):
    """The device ran out of memory; the message names the layer, the batch size and the memory in use."""
