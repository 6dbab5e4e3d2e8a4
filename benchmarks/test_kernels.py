"""Per-kernel benchmarks over every backend and a few sizes: dense forward/backward, fused softmax-CE, every
optimizer update, dropout and batch norm."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.conftest import TINY, timed
from tests.backends.kernel_cases import OPTIMIZER_OPTIONS, STATE_BUFFERS

DENSE = [(8, 16, 8)] if TINY else [(128, 784, 512), (128, 512, 256), (4096, 1024, 1024)]
ROWS = [(8, 10)] if TINY else [(128, 10), (4096, 1000)]
PARAMS = [1000] if TINY else [535_818, 4_000_000]
ACTIVATIONS = ["relu", "sigmoid", "gelu"]


def arrays(backend, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [backend.asarray(rng.standard_normal(shape).astype("float32")) for shape in shapes]


@pytest.mark.parametrize("shape", DENSE, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward(benchmark, backend, shape, activation):
    n, n_in, n_out = shape
    x, w, b = arrays(backend, (n, n_in), (n_in, n_out), (n_out,))
    z, y = backend.empty((n, n_out), x.dtype), backend.empty((n, n_out), x.dtype)

    def forward():
        backend.matmul(x, w, out=z)
        backend.bias_activation(z, b, activation, 0.0, y)

    timed(benchmark, backend, forward)


@pytest.mark.parametrize("shape", DENSE, ids=lambda s: "x".join(map(str, s)))
def test_dense_backward(benchmark, backend, shape):
    n, n_in, n_out = shape
    x, w, dy, y = arrays(backend, (n, n_in), (n_in, n_out), (n, n_out), (n, n_out))
    dz, dw, db, dx = (backend.empty(s, x.dtype) for s in ((n, n_out), (n_in, n_out), (n_out,), (n, n_in)))

    def backward():
        backend.activation_backward(dy, y, None, "relu", 0.0, dz)
        backend.matmul(x.T, dz, out=dw)
        backend.column_sum(dz, out=db)
        backend.matmul(dz, w.T, out=dx)

    timed(benchmark, backend, backward)


@pytest.mark.parametrize("shape", ROWS, ids=lambda s: "x".join(map(str, s)))
def test_softmax_cross_entropy(benchmark, backend, shape):
    (logits,) = arrays(backend, shape)
    target = backend.asarray(np.random.default_rng(0).integers(0, shape[1], shape[0]))
    grad = backend.empty(shape, logits.dtype)
    timed(benchmark, backend, lambda: backend.softmax_cross_entropy(logits, target, grad, 1 / shape[0]))


@pytest.mark.parametrize("size", PARAMS)
@pytest.mark.parametrize("kernel", list(OPTIMIZER_OPTIONS))
def test_optimizer_update(benchmark, backend, kernel, size):
    p, g = arrays(backend, (size,), (size,))
    states = [backend.zeros((size,), p.dtype) for _ in range(STATE_BUFFERS[kernel])]
    tmp = backend.empty((size,), p.dtype)
    options = dict(OPTIMIZER_OPTIONS[kernel][0])
    extra = {
        "adam_step": dict(step=10),
        "adagrad_step": dict(step=10),
        "sgd_step": dict(first_step=False),
        "nadam_step": dict(step=10, mu=0.9, mu_next=0.9, mu_product=0.5, mu_product_next=0.45),
    }
    options.update(extra.get(kernel, {}))
    timed(benchmark, backend, lambda: getattr(backend, kernel)(p, g, *states, tmp, **options))


@pytest.mark.parametrize("shape", [s[::2] for s in DENSE], ids=lambda s: "x".join(map(str, s)))
def test_dropout(benchmark, backend, shape):
    (x,) = arrays(backend, shape)
    mask, out = backend.empty(shape, x.dtype), backend.empty(shape, x.dtype)
    rng = backend.rng(0)
    timed(benchmark, backend, lambda: backend.dropout_forward(x, 0.5, rng, mask, out))


@pytest.mark.parametrize("shape", [s[::2] for s in DENSE], ids=lambda s: "x".join(map(str, s)))
def test_batchnorm_forward_backward(benchmark, backend, shape):
    n, c = shape
    x, dy = arrays(backend, shape, shape)
    gamma, beta = backend.full((c,), 1.0, x.dtype), backend.zeros((c,), x.dtype)
    mean, var = backend.zeros((c,), x.dtype), backend.full((c,), 1.0, x.dtype)
    out, xhat, dx = (backend.empty(shape, x.dtype) for _ in range(3))
    inv_std, dgamma, dbeta = (backend.empty((c,), x.dtype) for _ in range(3))

    def step():
        backend.batchnorm_forward_train(
            x, gamma, beta, mean, var, out, xhat, inv_std, eps=1e-5, new_weight=0.1, unbiased_running_var=True
        )
        backend.batchnorm_backward(dy, xhat, inv_std, gamma, dx, dgamma, dbeta)

    timed(benchmark, backend, step)


#: (batch, height, width, channels, filters) of 3x3 same convolutions: W7's second and fourth layers.
CONV3X3 = [(2, 6, 6, 16, 16)] if TINY else [(32, 32, 32, 32, 32), (32, 16, 16, 64, 64)]


@pytest.mark.parametrize("shape", CONV3X3, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("algorithm", ["patches", "winograd"])
def test_conv3x3_train_step(benchmark, backend, monkeypatch, shape, algorithm):
    """A 3x3 convolution's forward and backward pass in a train step, by its patches and by Winograd's F(2x2, 3x3)
    (on the NumPy backend the latter is the base class's array expressions, which it does not choose itself)."""
    import netcore
    from netcore.layers import Conv2D, Dense, GlobalAveragePooling2D

    n, height, width, channels, filters = shape
    monkeypatch.setattr(type(backend), "winograd_from_channels", 16 if algorithm == "winograd" else None)
    layers = [Conv2D(filters, 3, padding="same", activation="relu"), GlobalAveragePooling2D(), Dense(10, "softmax")]
    model = netcore.Sequential(layers, input_shape=(height, width, channels), device=backend.name, seed=0)
    model.compile("sgd", "cross_entropy")
    assert model.layers[-3].by_winograd == (algorithm == "winograd")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n, height, width, channels)).astype("float32"), rng.integers(0, 10, n)
    Xd, yd = model.prepare(X, y)[:2]
    timed(benchmark, backend, lambda: model.train_step(Xd, yd))
