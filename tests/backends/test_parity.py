"""Every kernel on every backend equals the NumPy reference, over generated shapes (1 row, odd sizes, strided)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backends.kernel_cases import CASES, DEVICE_RANDOM

TOLERANCE = {"float32": dict(rtol=3e-5, atol=3e-6), "float64": dict(rtol=1e-11, atol=1e-12)}


def run(case, backend, seed, n, c, dtype, contiguous):
    return case(backend, np.random.default_rng(seed), n, c, dtype, contiguous)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), c=st.integers(1, 13), seed=st.integers(0, 2**16), contiguous=st.booleans())
def test_kernel_matches_numpy(other_backend, numpy_backend, name, dtype, n, c, seed, contiguous):
    if name.startswith(("softmax_cross_entropy", "categorical", "multiclass", "kl_")) and c < 2:
        c = 2
    expected = run(CASES[name], numpy_backend, seed, n, c, dtype, contiguous)
    actual = run(CASES[name], other_backend, seed, n, c, dtype, contiguous)
    if name in DEVICE_RANDOM and other_backend.name.startswith("cupy"):
        return _check_device_random(name, actual)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=f"{name} on {other_backend.name}")


def _check_device_random(name, outputs):
    """GPU draws differ from the host's; check what must hold of them instead."""
    if name == "random_into":
        (u,) = outputs
        assert ((u >= 0) & (u < 1)).all()
    elif name == "gaussian_noise":
        (out,) = outputs
        assert np.isfinite(out).all()
    else:
        mask, out, dx = outputs
        for value in np.unique(mask):  # dropped (0) or kept and scaled (1 / keep probability, in the dtype)
            assert value == 0 or np.isclose(value, 1 / 0.7, rtol=1e-6), value
        np.testing.assert_allclose(dx, out * mask, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_recurrent_forward_steps_equal_numpy_to_the_bit(numpy_backend, dtype):
    """The numba forward steps (the base's passes take them where no compiled pass applies) keep NumPy's tanh and the
    base expressions' order of operations around it, so their states and gates are NumPy's exactly."""
    from backends import get_backend
    from backends.registry import backend_class

    if backend_class("numba").unavailable_reason() is not None:
        pytest.skip("numba is not installed")
    numba_backend = get_backend("numba")
    rng = np.random.default_rng(7)
    n, units = 19, 37
    for step, blocks, states in (("lstm_step", 4, 2), ("gru_step", 3, 1)):
        xw, hu = (3 * rng.standard_normal((n, blocks * units)).astype(dtype) for _ in range(2))
        previous = rng.standard_normal((n, units)).astype(dtype)
        results = []
        for backend in (numpy_backend, numba_backend):
            outputs = [np.empty((n, blocks * units), dtype)] + [np.empty((n, units), dtype) for _ in range(states)]
            getattr(backend, step)(xw, hu, previous, *outputs)
            results.append(outputs)
        for mine, reference in zip(*results, strict=True):
            np.testing.assert_array_equal(mine, reference, err_msg=f"{step} {dtype}")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numba_passes_do_not_drift_from_numpy_over_long_sequences(numpy_backend, cell):
    """The compiled passes' tanh is within a few units in the last place of NumPy's; over 400 float32 steps of a
    recurrence near the edge of stability the states stay as close as one step's rounding."""
    from backends import get_backend
    from backends.registry import backend_class
    from tests.backends.kernel_cases import pass_case

    if backend_class("numba").unavailable_reason() is not None:
        pytest.skip("numba is not installed")
    case = pass_case(cell, steps=400, gain=1.5)
    mine = case(get_backend("numba"), np.random.default_rng(3), 8, 24, "float32", True)
    reference = case(numpy_backend, np.random.default_rng(3), 8, 24, "float32", True)
    states, gradients = (mine[0], reference[0]), (mine[-1], reference[-1])
    np.testing.assert_allclose(*states, atol=2e-5, err_msg=f"{cell} states")
    scale = np.abs(gradients[1]).max()
    np.testing.assert_allclose(*gradients, atol=2e-5 * scale, err_msg=f"{cell} gradients")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_all_finite_finds_every_nan_and_infinity(backend, dtype, contiguous):
    """The reference itself, not only agreement with it: clean data passes, one bad value anywhere fails, and
    finite values whose sum overflows still pass."""
    (verdicts,) = CASES["all_finite"](backend, np.random.default_rng(3), 7, 130, dtype, contiguous)
    assert verdicts.tolist() == [1.0] + [0.0] * 9 + [1.0]
