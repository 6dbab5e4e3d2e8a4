"""PyTorch as the oracle: identical small networks with identical weights, 100 training steps, compared step by
step. Losses and parameters agree to 1e-10 relative in float64 (element by element) and 1e-5 in float32 (relative to
each tensor's norm: after 100 float32 steps, entries near zero carry rounding of the size of their neighbours)."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import losses, optimizers
from netcore.layers import Activation, BatchNorm, Dense, Dropout
from netcore.regularizers import L1, L2

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
nn = torch.nn

STEPS = 100
TOLERANCE = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


def assert_close(got, want, dtype, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if dtype == "float64":
        np.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=what)
    else:
        error = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
        assert error <= 1e-5, f"{what}: relative error {error:.3g} > 1e-5"


TORCH_ACTIVATIONS = {
    "linear": lambda a: nn.Identity(),
    "relu": lambda a: nn.ReLU(),
    "leaky_relu": lambda a: nn.LeakyReLU(a),
    "elu": lambda a: nn.ELU(a),
    "sigmoid": lambda a: nn.Sigmoid(),
    "tanh": lambda a: nn.Tanh(),
    "softplus": lambda a: nn.Softplus(),
    "gelu": lambda a: nn.GELU(),
    "gelu_tanh": lambda a: nn.GELU("tanh"),
    "softmax": lambda a: nn.Softmax(dim=1),
}


class SharedMaskDropout(nn.Module):
    """Dropout that applies the mask netcore's layer drew for the same step."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        mask = torch.from_numpy(self.layer.backend.to_numpy(self.layer._mask).copy())
        return x * mask.to(x.dtype)


def torch_twin(model, dtype):
    """The same network in PyTorch with the same weights; a fused final softmax/sigmoid is left out (the torch
    loss takes logits, as netcore's fused path does)."""
    modules, weights = [], model.get_weights()
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        if isinstance(layer, Dense):
            linear = nn.Linear(layer.n_in, layer.units, bias=layer.use_bias, dtype=getattr(torch, dtype))
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(weights.pop(0).T.copy()))
                if layer.use_bias:
                    linear.bias.copy_(torch.from_numpy(weights.pop(0)))
            modules.append(linear)
            if not (last and model.fused_outputs[0]):
                modules.append(TORCH_ACTIVATIONS[layer.activation.kind](layer.activation.alpha))
        elif isinstance(layer, Activation):
            if not (last and model.fused_outputs[0]):
                modules.append(TORCH_ACTIVATIONS[layer.activation.kind](layer.activation.alpha))
        elif isinstance(layer, BatchNorm):
            bn = nn.BatchNorm1d(layer.n_in, eps=layer.eps, momentum=layer.momentum, dtype=getattr(torch, dtype))
            with torch.no_grad():
                for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                    tensor.copy_(torch.from_numpy(weights.pop(0)))
            modules.append(bn)
        elif isinstance(layer, Dropout):
            modules.append(SharedMaskDropout(layer))
    return nn.Sequential(*modules).to(getattr(torch, dtype))


def penalty(twin, model):
    """netcore's kernel/bias penalties written in torch, on the twin's matching tensors."""
    total = 0.0
    linears = [m for m in twin if isinstance(m, nn.Linear)]
    for layer, linear in zip([l for l in model.layers if isinstance(l, Dense)], linears, strict=True):
        for reg, tensor in ((layer.kernel_regularizer, linear.weight), (layer.bias_regularizer, linear.bias)):
            if reg is not None:
                total = total + reg.l1 * tensor.abs().sum() + reg.l2 * (tensor * tensor).sum()
    return total


def compare(model, twin, torch_loss, torch_optimizer, X, y, dtype, batch=None, sample_weight=None, steps=STEPS):
    """Train both for ``steps`` steps on the same batches; compare every loss and the final parameters."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # torch keeps scalar optimizer state in the default dtype
    try:
        _compare(model, twin, torch_loss, torch_optimizer, X, y, dtype, batch, sample_weight, steps)
    finally:
        torch.set_default_dtype(saved)


def _compare(model, twin, torch_loss, torch_optimizer, X, y, dtype, batch, sample_weight, steps):
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    n = X.shape[0]
    batch = batch or n
    ours, theirs = [], []
    for step in range(steps):
        rows = slice((step * batch) % n, (step * batch) % n + batch)
        sw = None if sample_weight is None else sample_weight[rows]
        ours.append(model.train_on_batch(X[rows], y[rows], sample_weight=sw))
        torch_optimizer.zero_grad()
        loss = torch_loss(twin(tX[rows]), ty[rows], None if sw is None else torch.from_numpy(sw)) + penalty(twin, model)
        loss.backward()
        torch_optimizer.step()
        theirs.append(loss.item())
    assert_close(ours, theirs, dtype, "losses")
    for i, (got, want) in enumerate(zip(model.get_weights(), torch_weights(twin), strict=True)):
        assert_close(got, want, dtype, f"parameter {i}")


def torch_weights(twin):
    """Parameters and batch-norm statistics in netcore's get_weights order."""
    out = []
    for module in twin:
        if isinstance(module, nn.Linear):
            out.append(module.weight.detach().numpy().T)
            if module.bias is not None:
                out.append(module.bias.detach().numpy())
        elif isinstance(module, nn.BatchNorm1d):
            out += [t.detach().numpy() for t in (module.weight, module.bias, module.running_mean, module.running_var)]
    return out


def problem(n_out: int, targets: str, dtype: str, rows: int = 32, features: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features)).astype(dtype)
    if targets == "index":
        y = rng.integers(0, n_out, rows)
    elif targets == "binary":
        y = rng.integers(0, 2, (rows, n_out)).astype(dtype)
    elif targets == "sign":
        y = rng.choice([-1.0, 1.0], (rows, n_out)).astype(dtype)
    elif targets == "distribution":
        t = rng.random((rows, n_out)) + 0.1
        y = (t / t.sum(1, keepdims=True)).astype(dtype)
    elif targets == "unit":
        y = rng.random((rows, n_out)).astype(dtype)
    else:
        y = rng.standard_normal((rows, n_out)).astype(dtype)
    return X, y


def build(layers, loss, optimizer, dtype, device="numpy", features=5):
    model = netcore.Sequential(layers, input_dim=features, device=device, dtype=dtype, seed=0)
    model.compile(optimizer, loss)
    return model


def unweighted(fn):
    return lambda out, target, weight: fn(out, target)


DTYPES = ["float64", "float32"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", list(TORCH_ACTIVATIONS))
def test_activation(activation, dtype):
    model = build([Dense(8, activation), Dense(2)], "mse", optimizers.SGD(lr=0.05), dtype)
    twin = torch_twin(model, dtype)
    X, y = problem(2, "real", dtype)
    compare(model, twin, unweighted(nn.MSELoss()), torch.optim.SGD(twin.parameters(), lr=0.05), X, y, dtype)


def _multi_margin(out, target, weight):
    return nn.MultiMarginLoss()(out, target)


LOSSES = {
    "cross_entropy": ("softmax", losses.CrossEntropy(), "index", 3, unweighted(nn.CrossEntropyLoss())),
    "cross_entropy smoothing": (
        "softmax",
        losses.CrossEntropy(label_smoothing=0.1),
        "index",
        3,
        unweighted(nn.CrossEntropyLoss(label_smoothing=0.1)),
    ),
    "cross_entropy on probabilities": (
        "sigmoid",
        losses.CrossEntropy(label_smoothing=0.1),
        "index",
        3,
        lambda o, t, w: -((0.9 * nn.functional.one_hot(t, 3) + 0.1 / 3) * torch.log(o)).sum(1).mean(),
    ),
    "cross_entropy sum": (
        "softmax",
        losses.CrossEntropy(reduction="sum"),
        "index",
        3,
        unweighted(nn.CrossEntropyLoss(reduction="sum")),
    ),
    "bce fused": ("sigmoid", losses.BinaryCrossEntropy(), "binary", 2, unweighted(nn.BCEWithLogitsLoss())),
    "bce logits pos_weight": (
        "linear",
        losses.BinaryCrossEntropy(from_logits=True, pos_weight=2.0),
        "binary",
        2,
        unweighted(nn.BCEWithLogitsLoss(pos_weight=torch.tensor(2.0))),
    ),
    "bce probabilities": ("softmax", losses.BinaryCrossEntropy(), "binary", 2, unweighted(nn.BCELoss())),
    "mse": ("linear", losses.MeanSquaredError(), "real", 2, unweighted(nn.MSELoss())),
    "mse halved": (
        "linear",
        losses.MeanSquaredError(half=True),
        "real",
        2,
        lambda o, t, w: nn.functional.mse_loss(o, t) / 2,
    ),
    "mae": ("linear", losses.MeanAbsoluteError(), "real", 2, unweighted(nn.L1Loss())),
    "huber": ("linear", losses.Huber(delta=0.7), "real", 2, unweighted(nn.HuberLoss(delta=0.7))),
    "poisson log rates": ("linear", losses.PoissonNLL(), "unit", 2, unweighted(nn.PoissonNLLLoss())),
    "bce summed over outputs": (
        "sigmoid",
        losses.BinaryCrossEntropy(sum_outputs=True),
        "binary",
        3,
        lambda o, t, w: nn.functional.binary_cross_entropy_with_logits(o, t, reduction="sum") / len(o),
    ),
    "poisson rates": (
        "sigmoid",
        losses.PoissonNLL(log_input=False),
        "unit",
        2,
        unweighted(nn.PoissonNLLLoss(log_input=False)),
    ),
    "hinge": ("linear", losses.Hinge(), "sign", 1, lambda o, t, w: torch.clamp(1 - t * o, min=0).mean()),
    "multiclass_hinge": ("linear", losses.MultiClassHinge(), "index", 3, _multi_margin),
    "kl_divergence": (
        "softmax",
        losses.KLDivergence(),
        "distribution",
        3,
        lambda o, t, w: (t * (torch.log(t) - torch.log(o))).sum(1).mean(),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(LOSSES))
def test_loss(case, dtype):
    final, loss, targets, n_out, torch_loss = LOSSES[case]
    lr = 0.1 if loss.reduction == "mean" else 0.1 / 32  # the same step size for a sum over 32 rows
    model = build([Dense(6, "tanh"), Dense(n_out, final)], loss, optimizers.SGD(lr=lr), dtype)
    twin = torch_twin(model, dtype)
    X, y = problem(n_out, targets, dtype)
    compare(model, twin, torch_loss, torch.optim.SGD(twin.parameters(), lr=lr), X, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_class_weights_match_torch_weighted_mean(dtype):
    class_weight = np.array([1.0, 3.0, 0.5])
    model = build([Dense(6, "tanh"), Dense(3, "softmax")], "cross_entropy", optimizers.SGD(lr=0.1), dtype)
    twin = torch_twin(model, dtype)
    X, y = problem(3, "index", dtype)
    torch_loss = nn.CrossEntropyLoss(weight=torch.from_numpy(class_weight.astype(dtype)))
    compare(
        model,
        twin,
        unweighted(torch_loss),
        torch.optim.SGD(twin.parameters(), lr=0.1),
        X,
        y,
        dtype,
        sample_weight=class_weight[y].astype(dtype),
    )


OPTIMIZERS = {
    "sgd": (optimizers.SGD, dict(lr=0.05)),
    "sgd momentum dampening wd": (optimizers.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd nesterov": (optimizers.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    "adam": (optimizers.Adam, dict(lr=1e-2)),
    "adam amsgrad wd": (optimizers.Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01, amsgrad=True)),
    "adamw": (optimizers.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    "adagrad": (optimizers.Adagrad, dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    "rmsprop": (optimizers.RMSprop, dict(lr=1e-3)),
    "rmsprop centered momentum": (
        optimizers.RMSprop,
        dict(lr=1e-3, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.01),
    ),
    "adadelta": (optimizers.Adadelta, dict(lr=1.0, rho=0.95, weight_decay=0.01)),
    "nadam": (optimizers.NAdam, dict(lr=2e-3)),
    "nadam decoupled": (optimizers.NAdam, dict(lr=2e-3, weight_decay=0.1, decoupled_weight_decay=True)),
}


def classify(layers, cls, options, dtype, device="numpy", batch=None):
    """Train ``layers`` with ``cls(**options)`` and softmax cross-entropy beside the PyTorch twin with
    ``torch.optim.<cls name>(**options)``; returns both for further checks."""
    model = build(layers, "cross_entropy", cls(**options), dtype, device)
    twin = torch_twin(model, dtype)
    X, y = problem(3, "index", dtype)
    torch_optimizer = getattr(torch.optim, cls.__name__)(twin.parameters(), **options)
    compare(model, twin, unweighted(nn.CrossEntropyLoss()), torch_optimizer, X, y, dtype, batch=batch)
    return model, twin, X


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(OPTIMIZERS))
@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_optimizer(case, dtype, device):
    cls, options = OPTIMIZERS[case]
    classify([Dense(8, "tanh"), Dense(3, "softmax")], cls, options, dtype, device, batch=8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_with_a_shared_mask(dtype):
    classify([Dense(16, "relu"), Dropout(0.3), Dense(3, "softmax")], optimizers.SGD, dict(lr=0.1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_train_and_eval(dtype):
    layers = [Dense(8, use_bias=False), BatchNorm(), Activation("relu"), Dense(3, "softmax")]
    model, twin, X = classify(layers, optimizers.SGD, dict(lr=0.1, momentum=0.5), dtype, batch=8)
    twin.eval()
    with torch.no_grad():
        expected = torch.softmax(twin(torch.from_numpy(X)), dim=1).numpy()
    assert_close(model.predict(X), expected, dtype, "evaluation-mode outputs")


@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_and_l2_penalties(dtype):
    layers = [
        Dense(8, "tanh", kernel_regularizer=L2(0.01), bias_regularizer=L1(0.02)),
        Dense(3, "softmax", kernel_regularizer=L1(0.005)),
    ]
    classify(layers, optimizers.SGD, dict(lr=0.1), dtype)
