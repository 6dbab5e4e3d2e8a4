"""BLAS kept on the calling thread for a while: what the CPU backends do around each call of a model whose layers run
blocks of a batch on threads, and around each of its ``train_step`` calls, so that cheaply.

threadpoolctl finds the BLAS libraries in the process. Its ``limit`` context takes about 13 us and allocates a few
KB on every use; for OpenBLAS running its own threads (NumPy's wheels) the count is switched here through OpenBLAS's
two calls, looked up once: 2 us, nothing allocated. Any other library (MKL, BLIS, an OpenMP build) goes through
threadpoolctl. The libraries are looked up again whenever modules were imported since (SciPy and PyTorch bring BLAS
libraries of their own).
"""

from __future__ import annotations

import itertools
import sys

#: ``[(get, set), ...]`` per BLAS library once looked up; None where some library needs threadpoolctl.
_switches: list | None = None
_controller = None
#: How many modules were imported when the libraries were looked up.
_modules_seen = -1


def one_thread():
    """A context manager: BLAS on the calling thread while it is entered, on as many as before afterwards."""
    if len(sys.modules) != _modules_seen:
        _look_up()
    if _switches is not None:
        return _Switched(_switches)
    return _controller.limit(limits=1, user_api="blas")


def _look_up() -> None:
    global _switches, _controller, _modules_seen
    from threadpoolctl import ThreadpoolController

    _modules_seen = len(sys.modules)
    _controller = ThreadpoolController().select(user_api="blas")
    switches = [_openblas_calls(library) for library in _controller.lib_controllers]
    _switches = None if None in switches else switches


def _openblas_calls(library):
    """``(get, set)``: OpenBLAS's own thread-count calls in ``library``, under whichever symbol affixes its build
    uses; None for another library or an OpenMP build (there the count is per calling thread)."""
    if library.internal_api != "openblas" or library.threading_layer == "openmp":
        return None
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        get = getattr(library.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
        put = getattr(library.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and put is not None:
            return get, put
    return None


class _Switched:
    __slots__ = ("switches", "before")

    def __init__(self, switches: list):
        self.switches = switches

    def __enter__(self) -> None:
        self.before = [get() for get, _ in self.switches]
        for _, put in self.switches:
            put(1)

    def __exit__(self, *exc) -> None:
        for (_, put), count in zip(self.switches, self.before, strict=True):
            put(count)
