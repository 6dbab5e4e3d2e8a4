"""What lets a CuPy training step be captured as one CUDA graph: matrix products through a cuBLAS handle of the
backend's own (CuPy refuses cuBLAS calls while a stream is capturing), bound to the current stream at every call.

The handle is also where TF32 is switched on: per call, so the sums done as products with a ones row (bias
gradients, the loss) stay true float32 while the layers' products may use tensor cores.

Row-major ``C = op(A) @ op(B)`` is computed as the column-major product ``C^T = op(B)^T op(A)^T``, which needs no
copies: a C-contiguous matrix read column-major is its transpose.
"""

from __future__ import annotations

import numpy as np

#: cuBLAS math modes (cublasMath_t): IEEE float32, or float32 products through TF32 tensor cores.
_DEFAULT_MATH, _TF32_TENSOR_OP_MATH = 0, 3


class Gemm:
    """``out = a @ b`` for 2-D float32/float64 operands that are C-contiguous or transposed views of such."""

    def __init__(self, cupy):
        from cupy_backends.cuda.libs import cublas

        self.cupy = cupy
        self.cublas = cublas
        self.handle = cublas.create()
        self.tf32 = False
        self.scalars = {
            np.dtype("float32"): (np.ones((), np.float32), np.zeros((), np.float32)),
            np.dtype("float64"): (np.ones((), np.float64), np.zeros((), np.float64)),
        }

    @staticmethod
    def stored(x):
        """(C-contiguous matrix holding ``x``, whether ``x`` is its transpose) or None when neither."""
        if x.flags.c_contiguous:
            return x, False
        if x.T.flags.c_contiguous:
            return x.T, True
        return None

    def supports(self, a, b, out) -> bool:
        return (
            a.ndim == b.ndim == out.ndim == 2
            and a.dtype == b.dtype == out.dtype
            and a.dtype in self.scalars
            and out.flags.c_contiguous
            and self.stored(a) is not None
            and self.stored(b) is not None
        )

    def __call__(self, a, b, out, tf32: bool = False):
        """``tf32`` lets float32 products round their inputs to TF32 (no effect on float64)."""
        (sa, ta), (sb, tb) = self.stored(a), self.stored(b)
        m, k = a.shape
        n = b.shape[1]
        one, zero = self.scalars[a.dtype]
        gemm = self.cublas.sgemm if a.dtype == np.float32 else self.cublas.dgemm
        self.cublas.setStream(self.handle, self.cupy.cuda.get_current_stream().ptr)
        if tf32 != self.tf32:
            self.cublas.setMathMode(self.handle, _TF32_TENSOR_OP_MATH if tf32 else _DEFAULT_MATH)
            self.tf32 = tf32
        gemm(
            self.handle,
            int(tb),
            int(ta),
            n,
            m,
            k,
            one.ctypes.data,
            sb.data.ptr,
            sb.shape[1],
            sa.data.ptr,
            sa.shape[1],
            zero.ctypes.data,
            out.data.ptr,
            n,
        )
        return out
