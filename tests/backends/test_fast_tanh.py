"""The tanh of the numba backend's compiled recurrent passes: within a few units in the last place of the correctly
rounded value over the whole range, and NumPy's answer at the edges (NaN, infinities, signed zeros, subnormals)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require

EDGES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -1e-30, 5e-324, 1e-45, -19.5, 20.0, 21.0, 1e30, -1e30]


@pytest.fixture(scope="module")
def tanh_into():
    require("numba")
    from backends._numba_recurrent_kernels import tanh_into

    return tanh_into


def compiled(tanh_into, x):
    out = np.empty_like(x)
    tanh_into(x, out)
    return out


def test_float32_within_four_units_in_the_last_place(tanh_into):
    x = np.concatenate([np.linspace(-12, 12, 1_000_001), np.geomspace(1e-8, 12, 100_001)]).astype(np.float32)
    exact = np.tanh(x.astype(np.float64)).astype(np.float32)
    mine = compiled(tanh_into, x)
    ulps = np.abs(mine.astype(np.float64) - exact) / np.spacing(np.abs(exact)).astype(np.float64)
    assert ulps.max() <= 4, x[ulps.argmax()]
    assert (mine == exact).mean() > 0.5  # mostly correctly rounded, not merely close
    assert np.abs(mine).max() == 1  # a gate never leaves [0, 1]


def test_float64_within_a_few_roundings(tanh_into):
    x = np.concatenate([np.linspace(-25, 25, 1_000_000), np.geomspace(1e-12, 25, 100_001)])
    exact, mine = np.tanh(x), compiled(tanh_into, x)
    assert (np.abs(mine - exact) / np.abs(exact)).max() < 1e-15
    assert np.abs(mine).max() == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edges_are_numpys(tanh_into, dtype):
    with np.errstate(over="ignore", under="ignore"):
        x = np.array(EDGES).astype(dtype)
    mine, numpy = compiled(tanh_into, x), np.tanh(x)
    np.testing.assert_array_equal(mine, numpy)
    np.testing.assert_array_equal(np.signbit(mine), np.signbit(numpy))
