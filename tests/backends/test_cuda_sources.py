"""Every CUDA source of the CuPy backend, compiled as host C++ for float and double, whether a test calls it or not.

No GPU is needed: the backend is asked for all its kernels with a stand-in for the ``cupy`` module that records
them, each is translated as :mod:`tests.backends.cupy_on_cpu` does (an ElementwiseKernel body becomes a function with
the parameters CuPy would give it), and a C++ compiler checks names, types and syntax. A typo in a kernel body then
fails here instead of on the first GPU run; the parity suites check the numbers of the kernels they call.
"""

from __future__ import annotations

import functools
import re
import subprocess

import pytest

from backends.cupy_backend import _BACKWARD, _FORWARD, CupyBackend
from tests.backends.cupy_on_cpu import COMPILER, PRELUDE, elementwise_source, raw_source


class _RecordingCupy:
    """Stands in for the ``cupy`` module: keeps what the backend asks it to compile."""

    def __init__(self):
        self.elementwise = {}
        self.preambles = []
        self.modules = []

    def ElementwiseKernel(self, in_params, out_params, operation, name, preamble="", **options):  # noqa: N802
        self.elementwise[name] = (in_params, out_params, operation)
        if preamble and preamble not in self.preambles:
            self.preambles.append(preamble)
        return object()

    def RawModule(self, code, name_expressions=(), **options):  # noqa: N802 - CuPy's name
        self.modules.append((code, tuple(name_expressions)))
        return object()


def _recorded_sources() -> _RecordingCupy:
    backend = object.__new__(CupyBackend)  # no device needed: only the kernel factories run
    backend.xp = recorder = _RecordingCupy()
    for kind in _FORWARD:
        backend._bias_activation_kernel(kind, True)
        backend._bias_activation_kernel(kind, False)
    for kind in _FORWARD:
        backend._activation_forward_kernel(kind)
    for kind in _BACKWARD:
        backend._activation_backward_kernel(kind)
    for name, member in vars(CupyBackend).items():
        if isinstance(member, functools.cached_property) and name.endswith(("_kernel", "_module")):
            getattr(backend, name)
    return recorder


def _translation_unit(recorder: _RecordingCupy) -> str:
    parts = [PRELUDE, *recorder.preambles]
    parts += [elementwise_source(name, *spec) for name, spec in sorted(recorder.elementwise.items())]
    parts += [raw_source(code, expressions) for code, expressions in recorder.modules]
    return "\n\n".join(parts)


def test_every_kernel_factory_is_recorded():
    recorder = _recorded_sources()
    kernels = set(recorder.elementwise)
    assert {f"netcore_bias_{kind}" for kind in _FORWARD} <= kernels
    assert {f"netcore_{kind}_forward" for kind in _FORWARD} <= kernels
    assert {f"netcore_{kind}_backward" for kind in _BACKWARD} <= kernels
    assert {"netcore_adam", "netcore_sgd", "netcore_rmsprop", "netcore_nadam", "netcore_dropout"} <= kernels
    assert {"netcore_uniform", "netcore_gaussian_noise", "netcore_batchnorm_eval"} <= kernels
    expressions = {name for _, names in recorder.modules for name in names}
    assert {"softmax_ce<float>", "batchnorm_train<double>", "batchnorm_backward<float>"} <= expressions


def _compile(tmp_path) -> subprocess.CompletedProcess:
    source = tmp_path / "kernels.cpp"
    source.write_text(_translation_unit(_recorded_sources()))
    return subprocess.run(
        [COMPILER, "-std=c++14", "-fsyntax-only", str(source)], capture_output=True, text=True, timeout=600
    )


needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler on this machine")


@needs_compiler
def test_cuda_sources_compile_as_cpp_for_float_and_double(tmp_path):
    result = _compile(tmp_path)
    errors = [line for line in result.stderr.splitlines() if re.search(r"\berror\b", line)]
    assert result.returncode == 0, "\n".join(errors[:20]) or result.stderr[-2000:]


@needs_compiler
def test_a_typo_in_a_kernel_body_is_caught(tmp_path, monkeypatch):
    monkeypatch.setitem(_FORWARD, "relu", "t > 0 ? t : (T)0 + undefined_name")
    result = _compile(tmp_path)
    assert result.returncode != 0 and "undefined_name" in result.stderr
