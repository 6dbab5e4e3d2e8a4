"""Extreme inputs give finite losses and gradients: huge logits, saturated sigmoids, zero and one-row batches."""

from __future__ import annotations

import numpy as np
import pytest

from netcore import losses
from tests.backends.kernel_cases import DIFFERENTIABLE


def finite(backend, *arrays):
    return all(np.isfinite(np.asarray(backend.to_numpy(backend.asarray(a)), dtype=np.float64)).all() for a in arrays)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_softmax_cross_entropy_of_huge_logits(backend, dtype, scale):
    logits = backend.asarray((np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -3.0]]) * scale).astype(dtype))
    target = backend.asarray(np.array([1, 0]))
    grad = backend.empty(logits.shape, logits.dtype)
    loss = backend.softmax_cross_entropy(logits, target, grad, 0.5)
    assert finite(backend, grad) and np.isfinite(backend.to_float(loss))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_of_plus_minus_1e3(backend, dtype):
    z = backend.asarray(np.array([[1e3, -1e3, 0.0]], dtype))
    out = backend.empty(z.shape, z.dtype)
    backend.activation_forward(z, "sigmoid", 0.0, out)
    np.testing.assert_array_equal(backend.to_numpy(out), [[1.0, 0.0, 0.5]])
    grad = backend.empty(z.shape, z.dtype)
    loss = backend.sigmoid_cross_entropy(z, backend.asarray(np.array([[0.0, 1.0, 1.0]], dtype)), grad, 1 / 3)
    assert finite(backend, grad) and np.isfinite(backend.to_float(loss)) and backend.to_float(loss) > 600


@pytest.mark.parametrize("kind", DIFFERENTIABLE)
@pytest.mark.parametrize("value", [1e3, -1e3, 0.0])
def test_every_activation_is_finite_at_extremes(backend, kind, value):
    z = backend.asarray(np.full((1, 3), value, "float32"))
    y = backend.empty(z.shape, z.dtype)
    backend.activation_forward(z, kind, 0.01, y)
    dz = backend.empty(z.shape, z.dtype)
    backend.activation_backward(backend.asarray(np.ones((1, 3), "float32")), y, z, kind, 0.01, dz)
    assert finite(backend, y, dz)


LOSS_INPUTS = {
    "cross_entropy": (losses.CrossEntropy(), "softmax", np.array([2, 0])),
    "bce": (losses.BinaryCrossEntropy(), "sigmoid", np.array([[1.0], [0.0]])),
    "mse": (losses.MeanSquaredError(), "linear", np.array([[1.0], [0.0]])),
    "kl": (losses.KLDivergence(), "softmax", np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])),
}


@pytest.mark.parametrize("case", list(LOSS_INPUTS))
@pytest.mark.parametrize("rows", [1, 2])
def test_losses_on_zero_and_one_row_batches(backend, case, rows):
    import netcore
    from netcore.layers import Dense

    loss, final, y = LOSS_INPUTS[case]
    n_out = 3 if final == "softmax" else 1
    model = netcore.Sequential([Dense(4, "relu"), Dense(n_out, final)], input_dim=5, device=backend.name, seed=0)
    model.compile("adam", loss)
    value = model.train_on_batch(np.zeros((rows, 5), "float32"), y[:rows])
    assert np.isfinite(value)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_probability_losses_survive_exact_zeros_and_ones(backend):
    pred = backend.asarray(np.array([[0.0, 1.0], [1.0, 0.0]], "float32"))
    grad = backend.empty(pred.shape, pred.dtype)
    for kernel, target in [("binary_cross_entropy", [[1.0, 0.0], [1.0, 1.0]]), ("categorical_cross_entropy", [0, 1])]:
        loss = getattr(backend, kernel)(
            pred, backend.asarray(np.array(target, "float32" if kernel[0] == "b" else "int64")), grad, 0.5
        )
        assert np.isfinite(backend.to_float(loss)) and finite(backend, grad)


def _gelu_reference(kind, z):
    """Float64 GELU value and slope from the forms that keep the negative tail exact."""
    from scipy.special import erfc, expit

    if kind == "gelu":
        cdf = 0.5 * erfc(-z / np.sqrt(2))
        return z * cdf, cdf + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    s = expit(2 * np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))
    return z * s, s + 2 * z * s * (1 - s) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * z * z)


@pytest.mark.parametrize("kind", ["gelu", "gelu_tanh"])
def test_gelu_tails_keep_float32_precision(other_backend, numpy_backend, kind):
    # Far left, 1 + erf(z / sqrt 2) and 1 + tanh(u) cancel: written that way float32 keeps only a few bits there.
    z = np.linspace(-9.0, 3.0, 97)
    value, slope = _gelu_reference(kind, z)
    for backend in (numpy_backend, other_backend):
        zb = backend.asarray(z.astype(np.float32))
        out = backend.empty(zb.shape, zb.dtype)
        backend.activation_forward(zb, kind, 0.0, out)
        grad = backend.empty(zb.shape, zb.dtype)
        backend.activation_backward(backend.asarray(np.ones_like(z, np.float32)), out, zb, kind, 0.0, grad)
        np.testing.assert_allclose(backend.to_numpy(out), value, rtol=2e-5, err_msg=f"{kind} on {backend.name}")
        np.testing.assert_allclose(backend.to_numpy(grad), slope, rtol=2e-5, atol=1e-7, err_msg=backend.name)


@pytest.mark.parametrize("kind", DIFFERENTIABLE)
def test_every_activation_keeps_nan_and_infinity_where_numpy_does(other_backend, numpy_backend, kind):
    """A NaN swallowed by an activation would hide a diverged batch from fit's non-finite loss check."""
    values = np.array([[np.nan, np.inf, -np.inf, 1.0, -1.0, 0.0]], "float32")
    results = []
    for backend in (other_backend, numpy_backend):
        z = backend.asarray(values.copy())
        out = backend.empty(z.shape, z.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            backend.bias_activation(z, None, kind, 0.1, out)
        results.append(backend.to_numpy(out))
    got, want = results
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{kind} on {other_backend.name}")
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.isnan(want[0, 0]), f"{kind}(NaN) is not NaN in the reference"
