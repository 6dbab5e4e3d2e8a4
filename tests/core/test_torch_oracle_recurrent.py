"""PyTorch as the oracle for the recurrent layers: the same networks with the same weights trained side by side for
48 mini-batch steps, compared loss by loss and weight by weight (float64 to 1e-10 element by element, float32 to 1e-5
of each tensor's norm).

Keras's layout maps onto PyTorch's: ``kernel`` is ``weight_ih`` transposed, ``recurrent_kernel`` is ``weight_hh``
transposed; PyTorch's second bias (``bias_hh``) is frozen at zero where Keras has one bias; GRU's gate blocks are
``(z, r, h)`` in Keras and ``(r, z, n)`` in PyTorch, and its ``(2, 3 units)`` bias is PyTorch's two biases.
``go_backwards`` is the twin reading the flipped sequence.
"""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import optimizers
from netcore.layers import GRU, LSTM, Bidirectional, Dense, Flatten, SimpleRNN

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
nn, F = torch.nn, torch.nn.functional

from tests.core.oracle import ROWS, train_both  # noqa: E402

TIME, FEATURES, CLASSES = 7, 3, 3
DTYPES = ["float64", "float32"]


def _gru_blocks(matrix, axis):
    """Keras's (z, r, h) blocks in PyTorch's order (r, z, n) along ``axis``."""
    z, r, h = np.split(matrix, 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


class Recurrent(nn.Module):
    """A PyTorch RNN/LSTM/GRU with a netcore layer's weights, returning what the netcore layer returns."""

    def __init__(self, layer, weights, dtype):
        super().__init__()
        kind = type(layer).__name__
        options = dict(batch_first=True, dtype=dtype)
        if kind == "SimpleRNN":
            self.rnn = nn.RNN(layer.n_in, layer.units, nonlinearity=layer.activation.kind, **options)
        else:
            self.rnn = getattr(nn, kind)(layer.n_in, layer.units, **options)
        self.kind, self.layer = kind, layer
        kernel, recurrent = weights[0], weights[1]
        bias = weights[2] if layer.use_bias else np.zeros(layer.width)
        input_bias, recurrent_bias = (bias[0], bias[1]) if kind == "GRU" else (bias, np.zeros_like(bias))
        if kind == "GRU":
            kernel, recurrent = _gru_blocks(kernel, 1), _gru_blocks(recurrent, 1)
            input_bias, recurrent_bias = _gru_blocks(input_bias, 0), _gru_blocks(recurrent_bias, 0)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
            self.rnn.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(input_bias)))
            self.rnn.bias_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(recurrent_bias)))
        if kind != "GRU" or not layer.use_bias:
            self.rnn.bias_hh_l0.requires_grad_(False)  # Keras has a single bias
        if not layer.use_bias:
            self.rnn.bias_ih_l0.requires_grad_(False)

    def forward(self, x):
        out, _ = self.rnn(x.flip(1) if self.layer.go_backwards else x)
        return out if self.layer.return_sequences else out[:, -1]

    def netcore_weights(self):
        kernel = self.rnn.weight_ih_l0.detach().numpy().T
        recurrent = self.rnn.weight_hh_l0.detach().numpy().T
        input_bias, recurrent_bias = self.rnn.bias_ih_l0.detach().numpy(), self.rnn.bias_hh_l0.detach().numpy()
        if self.kind == "GRU":
            kernel, recurrent = _gru_blocks(kernel, 1), _gru_blocks(recurrent, 1)  # (r, z, n) -> (z, r, h) too
            input_bias, recurrent_bias = _gru_blocks(input_bias, 0), _gru_blocks(recurrent_bias, 0)
            bias = [np.stack([input_bias, recurrent_bias])]
        else:
            bias = [input_bias]
        return [kernel, recurrent] + (bias if self.layer.use_bias else [])


class BidirectionalTwin(nn.Module):
    """A bidirectional PyTorch RNN with the weights of a netcore Bidirectional (merge_mode="concat")."""

    def __init__(self, layer, weights, dtype):
        super().__init__()
        forward_part, backward_part = layer.parts
        half = len(weights) // 2
        ahead = Recurrent(forward_part, weights[:half], dtype)
        behind = Recurrent(backward_part, weights[half:], dtype)
        kind = type(forward_part).__name__
        options = dict(batch_first=True, dtype=dtype, bidirectional=True)
        module = nn.RNN if kind == "SimpleRNN" else getattr(nn, kind)
        self.rnn = module(forward_part.n_in, forward_part.units, **options)
        with torch.no_grad():
            for suffix, source in (("", ahead.rnn), ("_reverse", behind.rnn)):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.rnn, f"{name}_l0{suffix}").copy_(getattr(source, f"{name}_l0"))
        for suffix in ("", "_reverse"):
            if kind != "GRU":
                getattr(self.rnn, f"bias_hh_l0{suffix}").requires_grad_(False)
        self.parts, self.sequences = (ahead, behind), forward_part.return_sequences

    def forward(self, x):
        out, h = self.rnn(x)
        if self.sequences:
            return out
        last = h if isinstance(h, torch.Tensor) else h[0]  # LSTM returns (h, c); h is (directions, batch, units)
        return torch.cat([last[0], last[1]], dim=1)

    def netcore_weights(self):
        out = []
        for suffix, part in (("", self.parts[0]), ("_reverse", self.parts[1])):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(part.rnn, f"{name}_l0").data = getattr(self.rnn, f"{name}_l0{suffix}").detach().clone()
            out += part.netcore_weights()
        return out


class Linear(nn.Module):
    def __init__(self, layer, weights, dtype):
        super().__init__()
        self.linear = nn.Linear(layer.n_in, layer.units, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weights[0].T.copy()))
            self.linear.bias.copy_(torch.from_numpy(weights[1]))
        self.activation = layer.activation.kind

    def forward(self, x):
        y = self.linear(x)
        return torch.tanh(y) if self.activation == "tanh" else y

    def netcore_weights(self):
        return [self.linear.weight.detach().numpy().T, self.linear.bias.detach().numpy()]


def torch_twin(model, dtype):
    tdtype, weights, modules = getattr(torch, dtype), model.get_weights(), []
    for layer in model.layers:
        count = len(layer.param_specs())
        mine, weights = weights[:count], weights[count:]
        if isinstance(layer, Dense):
            modules.append(Linear(layer, mine, tdtype))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, Bidirectional):
            modules.append(BidirectionalTwin(layer, mine, tdtype))
        else:
            modules.append(Recurrent(layer, mine, tdtype))
    return nn.Sequential(*modules)


def train_side_by_side(layers, dtype, targets="last", optimizer=("Adam", dict(lr=1e-2)), device="numpy", clip=None):
    name, options = optimizer
    clip = clip or {}
    model = netcore.Sequential(layers, input_shape=(TIME, FEATURES), device=device, dtype=dtype, seed=0)
    model.compile(getattr(optimizers, name)(**options, **clip), "cross_entropy")
    twin = torch_twin(model, dtype)
    torch_optimizer = getattr(torch.optim, name)([p for p in twin.parameters() if p.requires_grad], **options)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, TIME, FEATURES)).astype(dtype)
    y = rng.integers(0, CLASSES, (ROWS, TIME) if targets == "steps" else ROWS)
    expected = lambda: [w for module in twin for w in getattr(module, "netcore_weights", lambda: [])()]  # noqa: E731
    train_both(model, twin, torch_optimizer, X, y, dtype, expected, clip)


CASES = {
    "simple_rnn tanh": lambda: [SimpleRNN(6), Dense(CLASSES, "softmax")],
    "simple_rnn relu backwards": lambda: [
        SimpleRNN(5, activation="relu", go_backwards=True),
        Dense(CLASSES, "softmax"),
    ],
    "lstm": lambda: [LSTM(6), Dense(CLASSES, "softmax")],
    "lstm no bias backwards": lambda: [LSTM(4, use_bias=False, go_backwards=True), Dense(CLASSES, "softmax")],
    "gru": lambda: [GRU(6), Dense(CLASSES, "softmax")],
    "gru backwards sequences": lambda: [
        GRU(5, return_sequences=True, go_backwards=True),
        Flatten(),
        Dense(CLASSES, "softmax"),
    ],
    "stacked lstm gru": lambda: [LSTM(5, return_sequences=True), GRU(4), Dense(CLASSES, "softmax")],
    "bidirectional lstm": lambda: [Bidirectional(LSTM(4)), Dense(CLASSES, "softmax")],
    "bidirectional gru sequences": lambda: [
        Bidirectional(GRU(3, return_sequences=True)),
        SimpleRNN(4),
        Dense(CLASSES, "softmax"),
    ],
    "bidirectional simple_rnn": lambda: [Bidirectional(SimpleRNN(4)), Dense(CLASSES, "softmax")],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_recurrent_network(case, dtype):
    train_side_by_side(CASES[case](), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_class_per_step_from_dense_on_the_sequence(dtype):
    layers = [SimpleRNN(6, return_sequences=True), Dense(5, "tanh"), Dense(CLASSES, "softmax")]
    train_side_by_side(layers, dtype, targets="steps")


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_sgd_with_momentum_on_every_cpu_backend(device):
    layers = [LSTM(5, return_sequences=True), GRU(4), Dense(CLASSES, "softmax")]
    train_side_by_side(layers, "float64", optimizer=("SGD", dict(lr=0.1, momentum=0.9)), device=device)


CLIPPING = {
    "global norm": dict(global_clipnorm=0.05),
    "value": dict(clipvalue=0.01),
    "norm then value": dict(global_clipnorm=0.1, clipvalue=0.02),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CLIPPING))
@pytest.mark.parametrize("optimizer", [("SGD", dict(lr=0.5)), ("Adam", dict(lr=1e-2))], ids=["sgd", "adam"])
def test_gradient_clipping_matches_torch(case, optimizer, dtype):
    """Small limits, so nearly every step clips; against clip_grad_norm_ / clip_grad_value_ before each step."""
    layers = [LSTM(5, return_sequences=True), GRU(4), Dense(CLASSES, "softmax")]
    train_side_by_side(layers, dtype, optimizer=optimizer, clip=CLIPPING[case])
