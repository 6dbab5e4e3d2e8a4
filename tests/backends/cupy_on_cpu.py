"""The CuPy backend run on the CPU, for machines without a GPU.

A stand-in ``cupy`` module is NumPy underneath, except where the backend asks for CUDA: every ``ElementwiseKernel``
and ``RawModule`` source is compiled as host C++ into a shared library (elementwise loops over the same element
index CuPy uses; ``__global__`` kernels with their grid walked one thread at a time), the backend's own cuBLAS GEMM
runs through a host implementation of cuBLAS's column-major ``gemm``, and a capturing stream records work for its
graph instead of running it (allocating or reading a value on the host meanwhile fails, as on a GPU). The backend's
Python code, its kernel sources, the argument order of every kernel call and its graph logic are then exercised as
on a GPU; what this cannot show (separate memory, real concurrency, the GPU's math library, timing) stays for the
``gpu``-marked tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import scipy.special

COMPILER = shutil.which("g++") or shutil.which("clang++")

_C_TYPES = {
    "bool": "bool",
    "int32": "int",
    "int64": "long long",
    "uint64": "unsigned long long",
    "float32": "float",
    "float64": "double",
}
_NUMPY_TYPES = {
    "bool": np.bool_,
    "int32": np.int32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}
PRELUDE = """
#include <algorithm>
#include <cmath>
using namespace std;
#define __global__
#define __device__
struct netcore_dim3 { unsigned x, y, z; };
static netcore_dim3 blockIdx, blockDim, threadIdx, gridDim;
"""


class _Capture:
    """Work launched while a stream captures: recorded for the graph, not run (as CUDA does)."""

    recording: list | None = None
    allocations = 0  # arrays made by the stand-in module or by operations without ``out``
    #: Host-to-device traffic, in order: ("pinned", bytes), ("wait", stream), ("copy", stream, from pinned memory).
    transfers: list = []
    pinned: list = []  # the buffers ``cupyx.empty_pinned`` handed out

    @classmethod
    def launch(cls, work) -> None:
        """Run ``work`` now, or record it when capturing."""
        if cls.recording is None:
            work()
        else:
            cls.recording.append(work)


def _is_pinned(array) -> bool:
    """Whether ``array`` views a buffer that ``cupyx.empty_pinned`` handed out."""
    while isinstance(array, np.ndarray):
        if any(array is buffer for buffer in _Capture.pinned):
            return True
        array = array.base
    return False


def _empty_pinned(shape, dtype=np.float64):
    buffer = np.empty(shape, dtype)
    _Capture.pinned.append(buffer)
    _Capture.transfers.append(("pinned", buffer.nbytes))
    return buffer


class DeviceArray(np.ndarray):
    """A NumPy array with what the backend reads of a CuPy array (``data.ptr``, ``device.id``), whose operations
    are recorded instead of run while a stream captures, and which may not be allocated then."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        host = [x.view(np.ndarray) if isinstance(x, DeviceArray) else x for x in inputs]
        if method == "at":  # in place, into its first operand (a scatter kernel)
            _Capture.launch(lambda: ufunc.at(*host, **kwargs))
            return None
        if out is None:
            assert _Capture.recording is None, f"{ufunc.__name__} allocates an array during graph capture"
            _Capture.allocations += 1
            return _device(getattr(ufunc, method)(*host, **kwargs))
        targets = tuple(o.view(np.ndarray) if isinstance(o, DeviceArray) else o for o in out)
        _Capture.launch(lambda: getattr(ufunc, method)(*host, out=targets, **kwargs))
        return out[0] if len(out) == 1 else out

    def __setitem__(self, key, value):
        # CuPy launches a copy (or fill) kernel: recorded while a stream captures, like every other launch.
        source = value.view(np.ndarray) if isinstance(value, DeviceArray) else value
        target = self.view(np.ndarray)
        _Capture.launch(lambda: target.__setitem__(key, source))

    def __getitem__(self, key):
        # CuPy gives a 0-d array (a view) where NumPy would give a scalar (a copy).
        result = super().__getitem__(key)
        if isinstance(result, np.generic):
            return super().__getitem__((*(key if isinstance(key, tuple) else (key,)), Ellipsis))
        return result

    def set(self, host, stream=None):
        """CuPy's host-to-device copy (asynchronous on ``stream`` from pinned memory)."""
        assert isinstance(host, np.ndarray) and host.shape == self.shape and host.dtype == self.dtype
        _Capture.transfers.append(("copy", stream, _is_pinned(host)))
        self[...] = host

    def __float__(self):
        assert _Capture.recording is None, "a device value read on the host during graph capture"
        return float(self.view(np.ndarray))


def _device(array):
    return array.view(DeviceArray) if isinstance(array, np.ndarray) else array


# ----------------------------------------------------------------------------------------------- kernels as C++
def _params(spec: str):
    """``[(raw, type, name)]`` of an ElementwiseKernel parameter list."""
    out = []
    for part in spec.split(","):
        words = part.split()
        out.append((words[0] == "raw", words[-2], words[-1]))
    return out


def _c_type(type_name: str, real: str) -> str:
    return real if type_name == "T" else _C_TYPES[type_name]


def elementwise_source(name: str, inputs: str, outputs: str, body: str) -> str:
    """The kernel as a template over T, plus one C entry point per precision that walks the elements."""
    params = [(*p, False) for p in _params(inputs)] + [(*p, True) for p in _params(outputs)]
    declared = []
    for raw, type_name, param, output in params:
        ctype = "T" if type_name == "T" else _C_TYPES[type_name]
        if raw:
            declared.append(f"{'' if output else 'const '}{ctype}* {param}")
        else:
            declared.append(f"{ctype}& {param}" if output else f"const {ctype} {param}")
    lines = [f"template <typename T>\nstatic void {name}(long long i, {', '.join(declared)}) {{\n{body};\n}}"]
    for real in ("float", "double"):
        arguments = []
        for index, (raw, type_name, _, _) in enumerate(params):
            ctype = _c_type(type_name, real)
            pointer = f"(({ctype}*)a[{index}])"
            arguments.append(pointer if raw else f"{pointer}[step[{index}] * i]")
        lines.append(
            f'extern "C" void {name}__{real}(long long n, void** a, const long long* step) {{\n'
            f"  for (long long i = 0; i < n; ++i) {name}<{real}>(i, {', '.join(arguments)});\n}}"
        )
    return "\n".join(lines)


def raw_source(code: str, expressions) -> str:
    """A RawModule's code, plus a C entry point per instantiated kernel that walks its grid one thread at a time."""
    lines = [code]
    for expression in expressions:
        kernel, real = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
        signature = re.search(rf"void\s+{kernel}\s*\(([^)]*)\)", code).group(1)
        names, declared = [], []
        for param in signature.split(","):
            param = param.strip()
            name = re.search(r"(\w+)$", param).group(1)
            names.append(name)
            declared.append(re.sub(r"\bT\b", real, param))
        lines.append(
            f'extern "C" void {kernel}__{real}(unsigned grid, unsigned block, {", ".join(declared)}) {{\n'
            f"  blockDim.x = block; gridDim.x = grid;\n"
            f"  for (blockIdx.x = 0; blockIdx.x < grid; ++blockIdx.x)\n"
            f"    for (threadIdx.x = 0; threadIdx.x < block; ++threadIdx.x) {expression}({', '.join(names)});\n}}"
        )
    return "\n".join(lines)


@functools.cache
def _library(source: str) -> ctypes.CDLL:
    """``source`` compiled once per content into a shared library."""
    folder = Path(tempfile.gettempdir()) / "netcore-cupy-on-cpu"
    folder.mkdir(exist_ok=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    library = folder / f"kernels-{digest}.so"
    if not library.exists():  # another process may be building it too: each works on files of its own
        cpp = folder / f"kernels-{digest}.{os.getpid()}.cpp"
        cpp.write_text(PRELUDE + source)
        partial = folder / f"kernels-{digest}.{os.getpid()}.tmp"
        built = subprocess.run(
            [COMPILER, "-std=c++14", "-O1", "-shared", "-fPIC", "-o", str(partial), str(cpp)],
            capture_output=True,
            text=True,
        )
        assert built.returncode == 0, f"the kernels in {cpp} do not compile:\n{built.stderr[-3000:]}"
        partial.replace(library)
        cpp.unlink()
    return ctypes.CDLL(str(library))


class _ElementwiseKernel:
    """Called like CuPy's: inputs then outputs, arrays broadcast together, scalars typed by the parameter list."""

    def __init__(self, in_params, out_params, operation, name, preamble="", **options):
        self.name = name
        self.params = _params(in_params) + _params(out_params)
        self.n_inputs = len(_params(in_params))
        self.source = preamble + elementwise_source(name, in_params, out_params, operation)

    def __call__(self, *args):
        assert len(args) == len(self.params), f"{self.name}: {len(args)} arguments for {len(self.params)} parameters"
        _Capture.launch(lambda: self._run(args))
        return args[-1]

    def _run(self, args):
        arrays = [a for (raw, _, _), a in zip(self.params, args, strict=True) if not raw and isinstance(a, np.ndarray)]
        real = np.result_type(*[a.dtype for a in arrays if a.dtype.kind == "f"] or [np.float64])
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        pointers, steps, keep, write_back = [], [], [], []
        for index, ((raw, type_name, _), value) in enumerate(zip(self.params, args, strict=True)):
            dtype = real if type_name == "T" else np.dtype(_NUMPY_TYPES[type_name])
            output = index >= self.n_inputs
            if raw:  # indexed by its logical (C-order) element number, as CuPy's CArray does
                assert value.dtype == dtype, f"{self.name}: raw argument {index} is {value.dtype}, expected {dtype}"
                buffer, step = np.ascontiguousarray(value), 0
                if output and buffer is not value:
                    write_back.append((value, buffer))
            elif isinstance(value, np.ndarray):
                assert value.dtype == dtype, f"{self.name}: argument {index} is {value.dtype}, expected {dtype}"
                if output and value.shape == shape and value.flags.c_contiguous:
                    buffer = value  # written in place
                else:  # strided or broadcast: CuPy indexes it in place, here a contiguous copy stands in
                    buffer = np.ascontiguousarray(np.broadcast_to(value, shape))
                    if output:
                        write_back.append((value, buffer))
                step = 1
            else:  # CuPy takes numbers for scalar parameters and refuses anything else, None included
                assert not output, f"{self.name}: output argument {index} is {type(value).__name__}, not an array"
                assert isinstance(value, (bool, int, float, np.generic)), f"{self.name}: argument {index} is {value!r}"
                buffer, step = np.array([value], dtype=dtype), 0
            keep.append(buffer)
            pointers.append(buffer.ctypes.data)
            steps.append(step)
        entry = getattr(_library(self.source), f"{self.name}__{'float' if real == np.float32 else 'double'}")
        entry(
            ctypes.c_longlong(int(np.prod(shape))),
            (ctypes.c_void_p * len(pointers))(*pointers),
            (ctypes.c_longlong * len(steps))(*steps),
        )
        for target, buffer in write_back:
            np.copyto(target.view(np.ndarray), buffer)


_SCALARS = {
    np.dtype(np.int32): ctypes.c_int,
    np.dtype(np.int64): ctypes.c_longlong,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}


class _RawModule:
    def __init__(self, code, options=(), name_expressions=()):
        self.expressions = tuple(name_expressions)
        self.source = raw_source(code, self.expressions)

    def get_function(self, expression):
        kernel, real = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
        entry = getattr(_library(self.source), f"{kernel}__{real}")

        def launch(grid, block, args):
            _Capture.launch(lambda: run(grid, block, args))

        def run(grid, block, args):
            converted = []
            for value in args:  # a RawKernel takes arrays and NumPy scalars of the parameter's exact type
                if isinstance(value, np.ndarray):
                    assert value.flags.c_contiguous, f"{expression}: a strided array argument"
                    converted.append(ctypes.c_void_p(value.ctypes.data))
                else:
                    converted.append(_SCALARS[np.dtype(type(value))](value))
            entry(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), *converted)

        return launch


# ----------------------------------------------------------------------------------------------- cuBLAS on the host
def _column_major(pointer: int, rows: int, cols: int, ld: int, ctype):
    """The rows x cols column-major matrix with leading dimension ``ld`` at ``pointer``, as a writable view."""
    flat = np.ctypeslib.as_array((ctype * (ld * cols)).from_address(pointer))
    return flat.reshape(cols, ld).T[:rows, :]


class HostCublas:
    """cuBLAS's gemm contract (``C = alpha op(A) op(B) + beta C``, column-major) on host memory."""

    def __init__(self):
        self.math_modes = []  # every setMathMode, in order
        self.products = []  # (math mode, m, n, k) of every gemm, in cuBLAS's column-major terms

    def create(self):
        return 7

    def setStream(self, handle, stream):  # noqa: N802 - cuBLAS's name
        assert handle == 7

    def setMathMode(self, handle, mode):  # noqa: N802 - cuBLAS's name
        self.math_modes.append(mode)

    def _gemm(self, ctype, handle, transa, transb, m, n, k, *rest):
        self.products.append((self.math_modes[-1] if self.math_modes else 0, m, n, k))
        _Capture.launch(lambda: self._run(ctype, handle, transa, transb, m, n, k, *rest))

    def _run(self, ctype, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
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


def cublas_modules(cublas: HostCublas) -> dict[str, types.ModuleType]:
    """``sys.modules`` entries under which ``from cupy_backends.cuda.libs import cublas`` finds ``cublas``."""
    libs = types.ModuleType("cupy_backends.cuda.libs")
    libs.cublas = cublas
    return {
        "cupy_backends": types.ModuleType("cupy_backends"),
        "cupy_backends.cuda": types.ModuleType("cupy_backends.cuda"),
        "cupy_backends.cuda.libs": libs,
        "cupy_backends.cuda.libs.cublas": cublas,
    }


# ----------------------------------------------------------------------------------------------- the module
class _Namespace(types.ModuleType):
    """NumPy, with its arrays returned as :class:`DeviceArray` and CuPy's extra names added."""

    ndarray = DeviceArray

    def __getattr__(self, name):
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):

            @functools.wraps(value)
            def on_device(*args, **kwargs):
                result = value(*args, **kwargs)
                given = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
                if isinstance(result, np.ndarray) and not any(np.may_share_memory(result, a) for a in given):
                    assert _Capture.recording is None, f"{name} allocates an array during graph capture"
                    _Capture.allocations += 1
                return _device(result)

            if isinstance(value, np.ufunc):  # CuPy's ufuncs have NumPy's methods (add.at: a scatter-add)
                on_device.at = value.at
            return on_device
        return value


def _fake_cuda():
    class OutOfMemoryError(MemoryError):
        pass

    class Device(contextlib.nullcontext):
        def __init__(self, index=0):
            super().__init__()
            self.id = index

        def synchronize(self):
            pass

    class Graph:
        def __init__(self, work):
            self.work = work

        def launch(self, stream=None):
            for item in self.work:
                item()

    class Stream(contextlib.nullcontext):
        """One in-order queue (the host runs everything at once), which can capture its work as a graph."""

        ptr = 0

        def __init__(self, non_blocking=False):
            super().__init__(self)
            self.non_blocking = non_blocking

        def synchronize(self):
            pass

        def begin_capture(self):
            assert _Capture.recording is None, "captures do not nest"
            _Capture.recording = []

        def end_capture(self):
            work, _Capture.recording = _Capture.recording, None
            return Graph(work)

        def wait_event(self, event):
            _Capture.transfers.append(("wait", self))

    class Event:
        def record(self, stream=None):
            pass

    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, memGetInfo=lambda: (1 << 30, 1 << 31))
    return types.SimpleNamespace(
        Device=Device,
        Stream=Stream,
        Event=Event,
        nccl=_fake_nccl(),
        runtime=runtime,
        memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
        get_current_stream=lambda: Stream(),
    )


def _fake_nccl() -> types.SimpleNamespace:
    """``cupy.cuda.nccl`` for processes of an MPI job on the CPU: ``allReduce`` sums the memory behind a stand-in
    device pointer over MPI's world communicator, and counts its calls (``NcclCommunicator.calls``)."""
    import ctypes

    class NcclCommunicator:
        calls = 0

        def __init__(self, ndev, unique_id, rank):
            from mpi4py import MPI

            assert isinstance(unique_id, tuple) and MPI.COMM_WORLD.Get_size() == ndev, (unique_id, ndev)
            self.comm, self.rank = MPI.COMM_WORLD, rank

        def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):  # noqa: N802 - CuPy's name
            from mpi4py import MPI

            assert sendbuf == recvbuf and op == 0, "in place sums only"
            kind = {0: ctypes.c_float, 1: ctypes.c_double}[datatype]
            memory = np.ctypeslib.as_array((kind * count).from_address(recvbuf))
            self.comm.Allreduce(MPI.IN_PLACE, memory, op=MPI.SUM)
            NcclCommunicator.calls += 1

    return types.SimpleNamespace(
        NCCL_FLOAT32=0,
        NCCL_FLOAT64=1,
        NCCL_SUM=0,
        available=True,
        get_unique_id=lambda: tuple(int(b) for b in np.random.default_rng().integers(0, 256, 128)),
        NcclCommunicator=NcclCommunicator,
    )


def transfers() -> list:
    """The host-to-device traffic so far (see ``_Capture.transfers``)."""
    return _Capture.transfers


def allocations() -> int:
    """Arrays allocated through the stand-in so far (creators, and operations without ``out``)."""
    return _Capture.allocations


def fake_cupy() -> types.ModuleType:
    module = _Namespace("cupy")
    module.ElementwiseKernel = _ElementwiseKernel
    module.RawModule = _RawModule
    module.asnumpy = lambda x: np.array(x)
    module.cuda = _fake_cuda()
    return module


@contextlib.contextmanager
def cupy_on_cpu():
    """A CupyBackend whose ``cupy`` (and the cuBLAS and SciPy bindings it imports) run on the CPU, registered as
    the ``cupy`` device for the duration."""
    from backends import registry
    from backends.cupy_backend import CupyBackend

    cupy = fake_cupy()
    special = types.ModuleType("cupyx.scipy.special")
    special.erfc = lambda x: _device(scipy.special.erfc(x))
    cupyx = types.ModuleType("cupyx")
    cupyx.empty_pinned = _empty_pinned
    modules = {
        "cupy": cupy,
        "cupyx": cupyx,
        "cupyx.scipy": types.ModuleType("cupyx.scipy"),
        "cupyx.scipy.special": special,
        **cublas_modules(HostCublas()),
        "cupy.cuda": cupy.cuda,
        "cupy.cuda.nccl": cupy.cuda.nccl,
    }
    saved = {name: sys.modules.get(name) for name in modules}
    instances = dict(registry._instances)
    sys.modules.update(modules)
    try:
        backend = registry._instances["cupy"] = CupyBackend(0)  # device="cupy" finds it too
        yield backend
    finally:
        _Capture.transfers, _Capture.pinned = [], []
        registry._instances.clear()
        registry._instances.update(instances)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
