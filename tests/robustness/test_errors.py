"""The error hierarchy, and clear errors at construction time."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import Dense, Dropout


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (netcore.ShapeError, ValueError),
        (netcore.DTypeError, TypeError),
        (netcore.DeviceError, ValueError),
        (netcore.BackendUnavailableError, RuntimeError),
        (netcore.CheckpointError, ValueError),
        (netcore.DivergenceError, RuntimeError),
        (netcore.ConfigurationError, ValueError),
        (netcore.OutOfMemoryError, MemoryError),
    ],
)
def test_every_error_is_a_netcore_error_and_a_builtin(error, builtin):
    assert issubclass(error, netcore.NetcoreError) and issubclass(error, builtin)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Dense(0), "positive integer"),
        (lambda: Dense(3, "rleu"), "did you mean 'relu'"),
        (lambda: Dropout(1.0), r"\[0, 1\)"),
        (lambda: netcore.optimizers.Adam(lr=0), "lr must be"),
        (lambda: netcore.optimizers.SGD(lr=float("nan")), "lr must be finite"),
        (lambda: netcore.optimizers.get("adamm"), "did you mean 'adam'"),
        (lambda: netcore.losses.get("cross_entropyy"), "did you mean 'cross_entropy'"),
        (lambda: netcore.Sequential([Dense(2)], device="nunpy"), "did you mean 'numpy'"),
        (lambda: netcore.Sequential([], input_dim=2).compile(), "has no layers"),
        (lambda: netcore.Sequential([object()]), "takes netcore layers, not object"),
        (lambda: Dense(2, input_shape=(0, 3)), "input_shape"),
        (lambda: netcore.optimizers.Adam(lr=0.1, learning_rate=0.1), "not both"),
        (lambda: netcore.Sequential([Dense(2)], input_dim=0), "input_dim"),
    ],
)
def test_construction_errors_name_the_problem(make, message):
    with pytest.raises(netcore.NetcoreError, match=message):
        make()


def test_feature_count_error_names_the_first_layer_and_both_sizes():
    model = netcore.Sequential([Dense(3, name="hidden"), Dense(2, "softmax")], input_dim=4, device="numpy", seed=0)
    with pytest.raises(netcore.ShapeError, match=r"X has 5 features but the first layer \(hidden\) expects 4"):
        model.predict(np.ones((2, 5)))
    with pytest.raises(netcore.ShapeError, match=r"a single sample is X\.reshape\(1, -1\)"):
        model.predict(np.ones(4))


def test_nan_error_names_the_first_offending_row():
    model = netcore.Sequential([Dense(2, "softmax")], input_dim=3, device="numpy", seed=0)
    model.compile("sgd", "cross_entropy")
    X = np.ones((6, 3))
    X[4, 1] = np.nan
    with pytest.raises(netcore.ShapeError, match="first in row 4"):
        model.fit(X, np.zeros(6, int), verbose=0)


class FakeGPUArray:
    """Something that lives on a CUDA device, as far as a CPU backend can tell."""

    def __init__(self, data):
        self.data = np.asarray(data, dtype="float32")
        self.__cuda_array_interface__ = {"shape": self.data.shape, "typestr": "<f4", "data": (0, False), "version": 3}

    def get(self):
        return self.data


def test_arrays_of_another_device_are_refused_or_copied_on_request(backend):
    model = netcore.Sequential([Dense(2)], input_dim=3, device=backend.name, seed=0)
    if backend.name.startswith("cupy"):
        pytest.skip("on a GPU backend a CUDA array of the same device is native")
    with pytest.raises(netcore.DeviceError, match=r"first layer \(dense\) of the model"):
        model.predict(FakeGPUArray(np.ones((2, 3))))
    model.auto_transfer = True
    assert model.predict(FakeGPUArray(np.ones((2, 3)))).shape == (2, 2)


def test_errors_show_and_pickle_under_the_public_name():
    import pickle

    error = netcore.ShapeError("bad")
    assert type(error).__module__ == "netcore" and isinstance(pickle.loads(pickle.dumps(error)), netcore.ShapeError)


def test_checkpoints_are_ordinary_files(tmp_path):
    import os
    import stat

    model = netcore.Sequential([Dense(2)], input_dim=2, device="numpy", seed=0)
    model.save(tmp_path / "m.ncz")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.ncz").stat().st_mode) == 0o666 & ~mask


def test_saving_into_a_missing_directory_names_the_directory_and_leaves_nothing(tmp_path):
    model = netcore.Sequential([Dense(2)], input_dim=2, device="numpy", seed=0)
    with pytest.raises(FileNotFoundError, match="missing directory") as info:
        model.save(tmp_path / "absent" / "m.ncz")
    assert info.value.filename == str(tmp_path / "absent")
    assert list(tmp_path.iterdir()) == []


def test_device_out_of_memory_names_layer_batch_and_memory_and_changes_nothing(cupy_backend, monkeypatch):
    from tests.robustness.fingerprint import fingerprint

    layers = [Dense(16, "relu", name="hidden"), Dense(3, "softmax")]
    model = netcore.Sequential(layers, input_dim=4, device=cupy_backend)
    model.compile("adam", "cross_entropy")
    X, y = np.random.default_rng(0).standard_normal((64, 4)), np.arange(64) % 3
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    before = fingerprint(model)
    oom = cupy_backend.out_of_memory_errors[0]

    def exhausted(*args, **kwargs):
        raise oom("out of memory allocating 4,294,967,296 bytes")

    monkeypatch.setattr(cupy_backend, "activation_backward", exhausted)
    with pytest.raises(netcore.OutOfMemoryError) as info:
        model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    message = str(info.value)
    assert "layer hidden" in message and "batch of 32 rows" in message and "MiB in use" in message
    assert "reduce batch_size" in message and isinstance(info.value.__cause__, oom)
    assert fingerprint(model) == before
