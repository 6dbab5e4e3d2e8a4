"""The CuPy backend's own cuBLAS GEMM, checked on the CPU: the row-major to column-major mapping (which operand goes
first, transpose flags, leading dimensions) and the TF32 switch.

A stand-in for CuPy's cuBLAS bindings runs ``sgemm``/``dgemm`` with cuBLAS's column-major semantics on host memory,
reached through the same pointers the real call would get; operands are NumPy arrays behind the small part of the
CuPy array interface that :class:`backends._cupy_graph.Gemm` reads.
"""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

from backends._cupy_graph import Gemm

_CTYPES = {np.dtype("float32"): ctypes.c_float, np.dtype("float64"): ctypes.c_double}


class _DeviceArray:
    """A NumPy array seen through the attributes Gemm uses on a CuPy array."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape, self.ndim, self.dtype, self.flags = array.shape, array.ndim, array.dtype, array.flags

    @property
    def T(self):  # noqa: N802 - the array attribute
        return _DeviceArray(self.array.T)

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.array.ctypes.data)


def _column_major(pointer: int, rows: int, cols: int, ld: int, ctype):
    """The rows x cols column-major matrix with leading dimension ``ld`` at ``pointer``, as a writable view."""
    flat = np.ctypeslib.as_array((ctype * (ld * cols)).from_address(pointer))
    return flat.reshape(cols, ld).T[:rows, :]


class _HostCublas:
    """cuBLAS's gemm contract (``C = alpha op(A) op(B) + beta C``, column-major) on host memory."""

    def __init__(self):
        self.math_modes = []

    def create(self):
        return 7

    def setStream(self, handle, stream):  # noqa: N802 - cuBLAS's name
        assert handle == 7

    def setMathMode(self, handle, mode):  # noqa: N802 - cuBLAS's name
        self.math_modes.append(mode)

    def _gemm(self, ctype, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        op_a = _column_major(a, k, m, lda, ctype).T if transa else _column_major(a, m, k, lda, ctype)
        op_b = _column_major(b, n, k, ldb, ctype).T if transb else _column_major(b, k, n, ldb, ctype)
        out = _column_major(c, m, n, ldc, ctype)
        scale, keep = ctype.from_address(alpha).value, ctype.from_address(beta).value
        product = scale * (op_a @ op_b)
        out[...] = product if keep == 0 else product + keep * out  # with beta = 0, cuBLAS never reads C

    def sgemm(self, *args):
        self._gemm(ctypes.c_float, *args)

    def dgemm(self, *args):
        self._gemm(ctypes.c_double, *args)


@pytest.fixture
def gemm(monkeypatch):
    cublas = _HostCublas()
    libs = types.ModuleType("cupy_backends.cuda.libs")
    libs.cublas = cublas
    for name, module in {
        "cupy_backends": types.ModuleType("cupy_backends"),
        "cupy_backends.cuda": types.ModuleType("cupy_backends.cuda"),
        "cupy_backends.cuda.libs": libs,
        "cupy_backends.cuda.libs.cublas": cublas,
    }.items():
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
    operands = _DeviceArray(a), _DeviceArray(b), _DeviceArray(out)
    assert gemm.supports(*operands)
    gemm(*operands)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_strided_or_mixed_operands_are_left_to_cupy(gemm):
    a = np.ones((4, 6), np.float32)
    out = np.empty((4, 4), np.float32)
    assert not gemm.supports(_DeviceArray(a[:, ::2]), _DeviceArray(np.ones((3, 4), np.float32)), _DeviceArray(out))
    assert not gemm.supports(_DeviceArray(a), _DeviceArray(np.ones((6, 4), np.float64)), _DeviceArray(out))
    assert not gemm.supports(_DeviceArray(a), _DeviceArray(np.ones((6, 4), np.float32)), _DeviceArray(out.T))


def test_tf32_switches_the_handle_only_when_asked_to_change(gemm):
    a, b, out = (_DeviceArray(np.ones(shape, np.float32)) for shape in [(2, 3), (3, 2), (2, 2)])
    gemm(a, b, out)
    gemm(a, b, out, tf32=True)
    gemm(a, b, out, tf32=True)
    gemm(a, b, out)
    assert gemm.cublas.math_modes == [3, 0]  # CUBLAS_TF32_TENSOR_OP_MATH, then CUBLAS_DEFAULT_MATH
