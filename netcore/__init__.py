"""netcore: a neural-network library whose core is written once against an array backend and runs on NumPy,
Numba-compiled kernels, or CuPy on CUDA GPUs.

    import netcore
    from netcore.layers import Dense
    model = netcore.Sequential([Dense(64, "relu"), Dense(10, "softmax")], device="cpu", seed=0)
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    model.fit(X, y, epochs=10, batch_size=32)

Graphs of layers (Keras's functional API): ``x = netcore.Input(shape=(64,))``, ``y = Dense(10)(x)``,
``netcore.Model(inputs=x, outputs=y)``.
"""

from backends import (
    DeviceInfo,
    device,
    devices,
    get_device,
    get_matmul_precision,
    set_device,
    set_matmul_precision,
)
from netcore import (
    activations,
    callbacks,
    datasets,
    distributed,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    regularizers,
    schedules,
    utils,
)
from netcore.errors import (
    BackendUnavailableError,
    CheckpointError,
    ConfigurationError,
    DataError,
    DeviceError,
    DistributedError,
    DivergenceError,
    DTypeError,
    NetcoreError,
    OutOfMemoryError,
    ShapeError,
)
from netcore.gradcheck import GradientReport, check_gradients
from netcore.models import Input, Model, Sequential
from netcore.trainers import History

__version__ = "0.1.0"


def load(path, device=None) -> Model:
    """A model from a file (``.ncz``, or Keras's ``.keras`` and ``.h5``; see :func:`netcore.models.load_model`)."""
    return models.load_model(path, device)


__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "ConfigurationError",
    "DTypeError",
    "DataError",
    "DeviceError",
    "DeviceInfo",
    "DistributedError",
    "DivergenceError",
    "GradientReport",
    "History",
    "Input",
    "Model",
    "NetcoreError",
    "OutOfMemoryError",
    "Sequential",
    "ShapeError",
    "activations",
    "callbacks",
    "datasets",
    "distributed",
    "check_gradients",
    "device",
    "devices",
    "get_device",
    "get_matmul_precision",
    "initializers",
    "layers",
    "load",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "regularizers",
    "schedules",
    "utils",
    "set_device",
    "set_matmul_precision",
]
