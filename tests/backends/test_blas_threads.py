"""BLAS kept on the calling thread while a model's block threads have the cores: through OpenBLAS's own calls where
it runs its own threads, else threadpoolctl's limit; either way the count comes back afterwards, also after an
error."""

from __future__ import annotations

import numpy  # noqa: F401 - loads the BLAS library NumPy uses
import pytest

from backends import blas_threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas() -> list:
    return [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


@pytest.mark.parametrize("own_calls", [True, False], ids=["openblas calls", "threadpoolctl"])
def test_one_thread_inside_and_as_before_afterwards(own_calls, monkeypatch):
    monkeypatch.setattr(blas_threads, "_modules_seen", -1)  # looked up afresh, restored after the test
    monkeypatch.setattr(blas_threads, "_controller", None)
    monkeypatch.setattr(blas_threads, "_switches", None)
    if not own_calls:
        monkeypatch.setattr(blas_threads, "_openblas_calls", lambda library: None)
    before = [info["num_threads"] for info in blas()]
    with pytest.raises(RuntimeError, match="inside"), blas_threads.one_thread():
        assert [info["num_threads"] for info in blas()] == [1] * len(before)
        raise RuntimeError("inside")
    assert [info["num_threads"] for info in blas()] == before
    switchable = all(info["internal_api"] == "openblas" and info["threading_layer"] != "openmp" for info in blas())
    assert (blas_threads._switches is not None) == (own_calls and switchable)


def test_libraries_are_looked_up_again_after_imports(monkeypatch):
    """A BLAS library that arrives with a later import (SciPy's, PyTorch's) is found: the lookup is redone once the
    imported modules changed."""
    import sys
    import types

    blas_threads.one_thread()
    seen = blas_threads._modules_seen
    assert seen == len(sys.modules)
    monkeypatch.setitem(sys.modules, "netcore_test_imported_later", types.ModuleType("netcore_test_imported_later"))
    blas_threads.one_thread()
    assert blas_threads._modules_seen == seen + 1


def test_numba_thread_limit_covers_the_blas_its_compiled_passes_call():
    """The numba backend's compiled recurrent passes call SciPy's BLAS, not NumPy's: a thread limit (a distributed
    job's ranks set one) covers it too (in a fresh process, as a limit holds for the whole process)."""
    import subprocess
    import sys

    from tests.conftest import require

    require("numba")
    code = (
        "import sys, threadpoolctl\n"
        "from backends import get_backend\n"
        "get_backend('numba').limit_threads(1)\n"
        "assert 'scipy.linalg.cython_blas' in sys.modules\n"
        "counts = [i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
        "assert counts and counts == [1] * len(counts), counts\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=600)


def test_a_compiled_recurrent_pass_gives_blas_its_threads_back():
    import numpy as np

    from tests.backends.kernel_cases import pass_case
    from tests.conftest import require

    backend = require("numba")
    pass_case("lstm")(backend, np.random.default_rng(0), 4, 5, "float32", True)  # loads SciPy's BLAS
    before = [info["num_threads"] for info in blas()]
    pass_case("lstm")(backend, np.random.default_rng(1), 4, 5, "float32", True)
    assert [info["num_threads"] for info in blas()] == before
