"""Device selection: names, aliases, the context manager, the environment variable, and honest errors."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import netcore
from backends import registry
from tests.conftest import ALL_BACKENDS, require


@pytest.fixture(autouse=True)
def _restore_default():
    saved = registry._default
    yield
    registry._default = saved


def test_devices_lists_every_backend_with_a_reason_when_unavailable():
    rows = {row.name: row for row in netcore.devices()}
    assert set(rows) == {"numpy", "numba", "cupy"}
    assert rows["numpy"].available and rows["numpy"].reason is None
    for row in rows.values():
        assert row.available == (row.reason is None)


@pytest.mark.parametrize(("alias", "expected"), [("numpy", "numpy"), ("NumPy", "numpy"), ("numba", "numba")])
def test_names_resolve(alias, expected):
    assert netcore.device(alias).__enter__().name == expected


def test_cpu_prefers_numba_and_auto_never_falls_back_silently():
    numba_ok = registry.backend_class("numba").unavailable_reason() is None
    assert registry.resolve("cpu") == ("numba" if numba_ok else "numpy")
    cupy_ok = registry.backend_class("cupy").unavailable_reason() is None
    assert registry.resolve("auto") == ("cupy" if cupy_ok else registry.resolve("cpu"))


def test_unknown_device_suggests_the_closest_name():
    with pytest.raises(netcore.DeviceError, match="did you mean 'numba'"):
        netcore.set_device("numbaa")
    with pytest.raises(ValueError):  # DeviceError is a ValueError
        netcore.set_device("nonsense")


def test_an_unavailable_backend_raises_with_its_cause():
    reason = registry.backend_class("cupy").unavailable_reason()
    if reason is None:
        pytest.skip("cupy is available here")
    for name in ("cupy", "gpu", "cuda", "cupy:1"):
        with pytest.raises(netcore.BackendUnavailableError, match="unavailable: "):
            netcore.set_device(name)


def test_set_device_and_context_manager_nest():
    netcore.set_device("numpy")
    assert netcore.get_device().name == "numpy"
    with netcore.device("numba") as inner:
        assert inner.name == "numba" and netcore.get_device() is inner
        with netcore.device("numpy"):
            assert netcore.get_device().name == "numpy"
        assert netcore.get_device().name == "numba"
    assert netcore.get_device().name == "numpy"


def test_context_is_per_thread():
    netcore.set_device("numpy")
    seen = {}

    def worker():
        seen["thread"] = netcore.get_device().name

    with netcore.device("numba"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert netcore.get_device().name == "numba"
    assert seen["thread"] == "numpy"


def test_model_is_created_on_the_active_device_and_moves():
    from netcore.layers import Dense

    with netcore.device("numpy"):
        model = netcore.Sequential([Dense(3, "relu"), Dense(2, "softmax")], input_dim=4, seed=0)
    assert model.device == "numpy"
    model.compile("adam", "cross_entropy")
    before = model.get_weights()
    model.to("numba")
    assert model.device == "numba"
    for a, b in zip(before, model.get_weights(), strict=True):
        assert (a == b).all()


def _run(code: str, **env):
    import os

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_environment_variable_sets_the_default():
    result = _run("import netcore; print(netcore.get_device().name)", NETCORE_DEVICE="numpy")
    assert result.stdout.strip() == "numpy", result.stderr


def test_import_netcore_loads_neither_numba_nor_cupy():
    result = _run("import sys, netcore; print(sorted(m for m in ('numba', 'cupy') if m in sys.modules))")
    assert result.stdout.strip() == "[]", result.stderr


def test_set_device_cupy_without_gpu_is_a_one_line_error():
    if registry.backend_class("cupy").unavailable_reason() is None:
        pytest.skip("cupy is available here")
    result = _run("import netcore; netcore.set_device('cupy')")
    assert result.returncode != 0
    assert "BackendUnavailableError" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "unavailable" in last and ("cupy" in last)


@pytest.fixture
def _restore_precision():
    saved = registry.get_matmul_precision()
    yield
    registry.set_matmul_precision(saved)


@pytest.mark.usefixtures("_restore_precision")
@pytest.mark.parametrize("name", ALL_BACKENDS)
def test_matmul_precision_reaches_every_backend_now_and_later(name):
    backend = require(name)  # a registered instance: the registry is what is under test
    assert netcore.get_matmul_precision() == "highest" and backend.matmul_precision == "highest"
    netcore.set_matmul_precision("high")
    assert backend.matmul_precision == "high" and netcore.get_matmul_precision() == "high"
    registry._instances.pop(backend.name)  # the next request builds a fresh instance, which must inherit it
    try:
        assert registry.get_backend(backend.name).matmul_precision == "high"
    finally:
        registry._instances[backend.name] = backend
    netcore.set_matmul_precision("highest")
    assert backend.matmul_precision == "highest"


@pytest.mark.usefixtures("_restore_precision")
@pytest.mark.parametrize("bad", ["medium", "tf32", None, 32])
def test_unknown_matmul_precision_is_a_configuration_error(bad):
    with pytest.raises(netcore.ConfigurationError, match="highest, high"):
        netcore.set_matmul_precision(bad)
    assert netcore.get_matmul_precision() == "highest"


@pytest.mark.gpu
@pytest.mark.usefixtures("_restore_precision")
def test_tf32_rounds_only_the_layer_products_and_only_in_float32():
    import numpy as np

    from tests.conftest import require

    cupy_backend = require("cupy")
    if int(cupy_backend.xp.cuda.Device(cupy_backend.index).compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0 or newer")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 2048)), rng.standard_normal((2048, 256))
    exact = a @ b

    def relative_error(dtype, precision):
        netcore.set_matmul_precision(precision)
        da, db = cupy_backend.asarray(a, dtype=dtype), cupy_backend.asarray(b, dtype=dtype)
        out = cupy_backend.empty((256, 256), dtype)
        result = cupy_backend.to_numpy(cupy_backend.matmul(da, db, out=out))
        return np.linalg.norm(result - exact) / np.linalg.norm(exact)

    assert relative_error("float32", "highest") < 1e-6
    assert 1e-5 < relative_error("float32", "high") < 1e-2  # TF32 keeps 10 mantissa bits of each input
    assert relative_error("float64", "high") < 1e-13
    netcore.set_matmul_precision("high")
    x = cupy_backend.asarray(rng.standard_normal((512, 64)), dtype="float32")
    sums = cupy_backend.empty((64,), "float32")
    cupy_backend.column_sum(x, sums)  # a ones-row product, kept in true float32
    np.testing.assert_allclose(cupy_backend.to_numpy(sums), cupy_backend.to_numpy(x).sum(axis=0), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("_restore_precision")
def test_tf32_reaches_the_layer_products_and_not_the_sums_on_the_cupy_stand_in():
    import numpy as np

    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    from netcore.layers import Dense

    with cupy_on_cpu() as backend:
        model = netcore.Sequential([Dense(8, "relu"), Dense(3, "softmax")], input_dim=5, device=backend, seed=0)
        model.compile("adam", "cross_entropy")
        X, y = np.random.default_rng(0).standard_normal((16, 5)), np.arange(16) % 3
        netcore.set_matmul_precision("high")
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        products = backend._gemm.cublas.products
    # In column-major terms a row-major (1, rows) @ (rows, c) sum has n == 1; the layers' products never do here.
    sums = {mode for mode, m, n, k in products if n == 1}
    layers = {mode for mode, m, n, k in products if n != 1}
    assert sums == {0} and layers == {3}
