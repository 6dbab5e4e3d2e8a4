"""The CuPy backend's own cuBLAS GEMM, checked on the CPU: the row-major to column-major mapping (which operand goes
first, transpose flags, leading dimensions) and the TF32 switch.

A stand-in for CuPy's cuBLAS bindings (:class:`tests.backends.cupy_on_cpu.HostCublas`) runs ``sgemm``/``dgemm``
with cuBLAS's column-major semantics on host memory, reached through the same pointers the real call would get.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from backends._cupy_graph import Gemm
from tests.backends.cupy_on_cpu import DeviceArray, HostCublas, cublas_modules


def on_device(array):
    """``array`` as the backend sees a CuPy array (``data.ptr``, ``T``, ``flags``)."""
    return array.view(DeviceArray)


@pytest.fixture
def gemm(monkeypatch):
    for name, module in cublas_modules(HostCublas()).items():
        monkeypatch.setitem(sys.modules, name, module)
    stream = types.SimpleNamespace(ptr=0)
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(get_current_stream=lambda: stream))
    return Gemm(fake_cupy)


# The products a dense layer makes (forward, weight gradient, input gradient), both operands transposed, and the
# ones-row product that stands in for a column sum.
CASES = {
    "x @ W": lambda x, w, dz: (x, w),
    "x.T @ dz": lambda x, w, dz: (x.T, dz),
    "dz @ W.T": lambda x, w, dz: (dz, w.T),
    "W.T @ x.T": lambda x, w, dz: (w.T, x.T),
    "ones @ dz": lambda x, w, dz: (np.ones((1, dz.shape[0]), dz.dtype), dz),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("rows,n_in,n_out", [(5, 3, 4), (16, 7, 1), (1, 9, 6)])
def test_products_match_numpy(gemm, case, dtype, rows, n_in, n_out):
    rng = np.random.default_rng(rows * 100 + n_in * 10 + n_out)
    x = rng.standard_normal((rows, n_in)).astype(dtype)
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    dz = rng.standard_normal((rows, n_out)).astype(dtype)
    a, b = CASES[case](x, w, dz)
    out = np.full((a.shape[0], b.shape[1]), np.nan, dtype)
    operands = on_device(a), on_device(b), on_device(out)
    assert gemm.supports(*operands)
    gemm(*operands)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_strided_or_mixed_operands_are_left_to_cupy(gemm):
    a = np.ones((4, 6), np.float32)
    out = np.empty((4, 4), np.float32)
    assert not gemm.supports(on_device(a[:, ::2]), on_device(np.ones((3, 4), np.float32)), on_device(out))
    assert not gemm.supports(on_device(a), on_device(np.ones((6, 4), np.float64)), on_device(out))
    assert not gemm.supports(on_device(a), on_device(np.ones((6, 4), np.float32)), on_device(out.T))


def test_tf32_switches_the_handle_only_when_asked_to_change(gemm):
    a, b, out = (on_device(np.ones(shape, np.float32)) for shape in [(2, 3), (3, 2), (2, 2)])
    gemm(a, b, out)
    gemm(a, b, out, tf32=True)
    gemm(a, b, out, tf32=True)
    gemm(a, b, out)
    assert gemm.cublas.math_modes == [3, 0]  # CUBLAS_TF32_TENSOR_OP_MATH, then CUBLAS_DEFAULT_MATH
