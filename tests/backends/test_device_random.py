"""The CuPy backend's device-side draws (uniform fills, dropout masks, Gaussian noise): a counter-based generator,
so they are checked by their statistics rather than against the host's draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

N = 1 << 16


def draws(backend, seed, dtype, n=N):
    out = backend.empty((n,), dtype)
    backend.random_into(backend.rng(seed), out)
    return backend.to_numpy(out)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_draws_fill_the_unit_interval_evenly(cupy_backend, dtype):
    u = draws(cupy_backend, 0, dtype)
    assert u.dtype == np.dtype(dtype) and ((u >= 0) & (u < 1)).all()
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    assert abs(u.var() - 1 / 12) < 0.003
    counts = np.bincount((u * 64).astype(int), minlength=64)
    chi2 = ((counts - N / 64) ** 2 / (N / 64)).sum()
    assert chi2 < 120, f"chi-square {chi2:.0f} over 63 degrees of freedom"
    lag = np.corrcoef(u[:-1], u[1:])[0, 1]  # neighbouring elements come from neighbouring counters
    assert abs(lag) < 5 / np.sqrt(N)
    resolution = 2.0**-24 if dtype == "float32" else 2.0**-53
    np.testing.assert_array_equal(np.round(u / resolution) * resolution, u)


def test_a_seed_fixes_the_draws_and_each_call_draws_anew(cupy_backend):
    np.testing.assert_array_equal(draws(cupy_backend, 7, "float32"), draws(cupy_backend, 7, "float32"))
    assert not np.array_equal(draws(cupy_backend, 7, "float32"), draws(cupy_backend, 8, "float32"))
    rng = cupy_backend.rng(7)
    first, second = cupy_backend.empty((N,), "float32"), cupy_backend.empty((N,), "float32")
    cupy_backend.random_into(rng, first)
    cupy_backend.random_into(rng, second)
    first, second = cupy_backend.to_numpy(first), cupy_backend.to_numpy(second)
    assert abs(np.corrcoef(first, second)[0, 1]) < 5 / np.sqrt(N)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keeps_one_minus_rate_of_the_units(cupy_backend, rate):
    x = cupy_backend.asarray(np.random.default_rng(0).standard_normal((256, 256)).astype("float32"))
    mask, out = cupy_backend.empty(x.shape, x.dtype), cupy_backend.empty(x.shape, x.dtype)
    cupy_backend.dropout_forward(x, rate, cupy_backend.rng(0), mask, out)
    mask, out, x = (cupy_backend.to_numpy(a) for a in (mask, out, x))
    kept = mask != 0
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / kept.size)
    np.testing.assert_allclose(mask[kept], np.float32(1 / (1 - rate)), rtol=1e-7)
    np.testing.assert_array_equal(out, x * mask)
    rows, cols = kept.mean(axis=1), kept.mean(axis=0)  # no row or column stripes
    assert np.abs(rows - (1 - rate)).max() < 6 * np.sqrt(rate * (1 - rate) / 256)
    assert np.abs(cols - (1 - rate)).max() < 6 * np.sqrt(rate * (1 - rate) / 256)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gaussian_noise_is_normal_with_the_given_spread(cupy_backend, dtype):
    x = cupy_backend.asarray(np.linspace(-1, 1, N).astype(dtype).reshape(256, -1))
    out = cupy_backend.empty(x.shape, x.dtype)
    cupy_backend.gaussian_noise(x, 0.5, cupy_backend.rng(0), out)
    noise = (cupy_backend.to_numpy(out) - cupy_backend.to_numpy(x)).ravel() / 0.5
    assert abs(noise.mean()) < 5 / np.sqrt(N) and abs(noise.std() - 1) < 0.02
    assert stats.kstest(noise, "norm").pvalue > 1e-4
    assert abs((np.abs(noise) > 3).mean() - 2 * stats.norm.sf(3)) < 0.002  # the tails are there, not clipped
    again = cupy_backend.empty(x.shape, x.dtype)
    cupy_backend.gaussian_noise(x, 0.5, cupy_backend.rng(0), again)
    np.testing.assert_array_equal(cupy_backend.to_numpy(again), cupy_backend.to_numpy(out))
