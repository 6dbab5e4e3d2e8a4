"""PyTorch as the oracle for functional models: the same graphs (skip connections, several inputs and outputs,
shared layers, merges, nested and frozen models) with the same weights, trained side by side for 48 Adam steps,
compared loss by loss and weight by weight (float64 to 1e-10), on every backend.

The twin replays netcore's own order of layer calls with one PyTorch module per layer: a layer called twice is one
module called twice, so PyTorch's autograd sums its gradients as netcore's graph must.
"""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import optimizers
from netcore.layers import (
    Activation,
    Add,
    Average,
    BatchNorm,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    Maximum,
    Minimum,
    Multiply,
    ReLU,
    Subtract,
    ZeroPadding2D,
)

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
nn, F = torch.nn, torch.nn.functional

from tests.core.oracle import BATCH, ROWS, STEPS  # noqa: E402
from tests.core.test_torch_oracle import TORCH_ACTIVATIONS, assert_close  # noqa: E402
from tests.core.test_torch_oracle_images import ChannelNorm, ChannelsLast, LinearLast, PaddedConv  # noqa: E402

MERGES = {
    Add: lambda xs: sum(xs[1:], xs[0]),
    Subtract: lambda xs: xs[0] - xs[1],
    Multiply: lambda xs: torch.stack(xs).prod(dim=0),
    Average: lambda xs: torch.stack(xs).mean(dim=0),
    Maximum: lambda xs: torch.stack(xs).amax(dim=0),
    Minimum: lambda xs: torch.stack(xs).amin(dim=0),
}


class FeatureNorm(nn.Module):
    """BatchNorm1d with netcore's weights, as the image twin's ChannelNorm is for channels."""

    def __init__(self, layer, weights, dtype, frozen):
        super().__init__()
        self.bn = nn.BatchNorm1d(layer.n_in, eps=layer.eps, momentum=layer.momentum, dtype=dtype)
        with torch.no_grad():
            for tensor, value in zip(self.parts(), weights, strict=True):
                tensor.copy_(torch.from_numpy(value))
        self.frozen = frozen

    def parts(self):
        return (self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var)

    def forward(self, x):
        if self.frozen:
            self.bn.eval()
        return self.bn(x)

    def netcore_weights(self):
        return [t.detach().numpy() for t in self.parts()]


class Depthwise(nn.Module):
    """A grouped convolution with netcore's depthwise kernel ``(kh, kw, c, m)`` as PyTorch's ``(c * m, 1, kh, kw)``."""

    def __init__(self, layer, kernel, bias, dtype):
        super().__init__()
        self.conv = PaddedConv(layer, np.zeros((*layer.kernel_size, 1, layer.filters)), bias, dtype)
        self.conv.conv = nn.Conv2d(
            layer.n_in, layer.filters, layer.kernel_size, stride=layer.strides, dilation=layer.dilation_rate,
            groups=layer.n_in, bias=layer.use_bias, dtype=dtype,
        )  # fmt: skip
        self.shape = kernel.shape
        with torch.no_grad():
            self.conv.conv.weight.copy_(
                torch.from_numpy(kernel.transpose(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2]))
            )
            if bias is not None:
                self.conv.conv.bias.copy_(torch.from_numpy(bias))

    def forward(self, x):
        return self.conv(x)

    def netcore_weights(self):
        kh, kw, c, m = self.shape
        kernel = self.conv.conv.weight.detach().numpy().reshape(c, m, kh, kw).transpose(2, 3, 0, 1)
        return [kernel] + ([self.conv.conv.bias.detach().numpy()] if self.conv.conv.bias is not None else [])


def _keras_relu(layer, x):
    below = layer.negative_slope * (x - layer.threshold)
    y = torch.where(x >= layer.threshold, x, below)
    return y if layer.max_value is None else y.clamp(max=layer.max_value)


def _module(layer, weights, dtype):
    """The PyTorch module of one netcore layer (None for layers without one: activations, merges, reshapes)."""
    if isinstance(layer, DepthwiseConv2D):
        kernel, bias = next(weights), next(weights) if layer.use_bias else None
        return ChannelsLast(Depthwise(layer, kernel, bias, dtype))
    if isinstance(layer, Dense):
        kernel, bias = next(weights), next(weights) if layer.use_bias else None
        return LinearLast(layer, kernel, bias, dtype)
    if isinstance(layer, Conv2D):
        kernel, bias = next(weights), next(weights) if layer.use_bias else None
        return ChannelsLast(PaddedConv(layer, kernel, bias, dtype))
    if isinstance(layer, BatchNorm):
        norm = ChannelNorm if len(layer.input_shape) == 3 else FeatureNorm
        return norm(layer, [next(weights) for _ in range(4)], dtype, not layer.trainable)
    return None


class TorchGraph(nn.Module):
    """The model's layer calls in netcore's order, one module per layer (fused final activations left out)."""

    def __init__(self, model, dtype):
        super().__init__()
        weights = iter(model.get_weights())
        self.layers = model.leaf_layers()
        self.units = nn.ModuleList()
        for layer in self.layers:
            module = _module(layer, weights, getattr(torch, dtype))
            self.units.append(module if module is not None else nn.Identity())
            if not layer.trainable:
                for parameter in self.units[-1].parameters():
                    parameter.requires_grad_(False)
        self.steps = model.executor.steps
        self.n_inputs = len(model.inputs)
        self.outputs = model.executor.output_slots

    def forward(self, *inputs):
        values = dict(enumerate(inputs))
        for step in self.steps:
            layer = step.call.layer
            unit = self.units[next(i for i, known in enumerate(self.layers) if known is layer)]
            if step.many:
                xs = [values[i] for i in step.inputs]
                y = torch.cat(xs, dim=layer.sample_axis + 1) if isinstance(layer, Concatenate) else None
                y = MERGES[type(layer)](xs) if y is None else y
            elif isinstance(layer, Flatten):
                y = values[step.inputs[0]].reshape(len(inputs[0]), -1)
            elif isinstance(layer, ZeroPadding2D):
                (top, bottom), (left, right) = layer.padding
                y = F.pad(values[step.inputs[0]], (0, 0, left, right, top, bottom))
            elif isinstance(layer, ReLU):
                y = _keras_relu(layer, values[step.inputs[0]])
            elif isinstance(layer, GlobalAveragePooling2D):
                y = values[step.inputs[0]].mean(dim=(1, 2))
            else:
                y = unit(values[step.inputs[0]])
            act = getattr(layer, "activation", None)
            if act is not None and act.kind != "linear" and not step.logits:
                y = TORCH_ACTIVATIONS[act.kind](act.alpha)(y.reshape(-1, y.shape[-1])).reshape(y.shape)
            values[step.output] = y
        return [values[slot] for slot in self.outputs]

    def netcore_weights(self):
        out = []
        for unit in self.units:
            inner = unit.body if isinstance(unit, ChannelsLast) else unit
            out += getattr(inner, "netcore_weights", lambda: [])()
        return out


def _torch_loss(head, out, target):
    if head.loss.name == "CrossEntropy":
        return F.cross_entropy(out, target)
    return F.mse_loss(out, target)


def train_side_by_side(model, X: list, Y: list, dtype: str, lr: float = 1e-2):
    """48 Adam steps on rotating mini-batches in netcore and in the twin; every loss and final weight compared."""
    heads = model.heads
    model.compile(optimizers.Adam(lr=lr), [h.loss for h in heads], loss_weights=[h.weight for h in heads])
    twin = TorchGraph(model, dtype)
    torch_optimizer = torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], lr=lr)
    tX, tY = [torch.from_numpy(x) for x in X], [torch.from_numpy(y) for y in Y]
    ours, theirs = [], []
    for step in range(STEPS):
        rows = slice((step * BATCH) % ROWS, (step * BATCH) % ROWS + BATCH)
        ours.append(model.train_on_batch([x[rows] for x in X], [y[rows] for y in Y]))
        torch_optimizer.zero_grad()
        outs = twin(*[x[rows] for x in tX])
        pairs = zip(model.heads, outs, tY, strict=True)
        loss = sum(head.weight * _torch_loss(head, out, y[rows]) for head, out, y in pairs)
        loss.backward()
        torch_optimizer.step()
        theirs.append(loss.item())
    assert_close(ours, theirs, dtype, "losses")
    for i, (got, want) in enumerate(zip(model.get_weights(), twin.netcore_weights(), strict=True)):
        assert_close(got, want, dtype, f"weight {i}")
    return model


def _data(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((ROWS, *shape)).astype(dtype) for shape in shapes]


def _labels(classes=3, seed=1):
    return np.random.default_rng(seed).integers(0, classes, ROWS)


def residual_mlp():
    x = Input((6,))
    h = Dense(8, "tanh")(x)
    g = Dense(8, "tanh")(h)
    return [x], [Dense(3, "softmax")(Add()([h, g]))]


def two_inputs_concatenated():
    a, b = Input((6,), name="a"), Input((4,), name="b")
    mixed = Dense(6, "tanh")(Concatenate()([Dense(5, "tanh")(a), b]))
    return [a, b], [Dense(3, "softmax")(Concatenate()([mixed, a]))]  # a is also used directly


def shared_dense_subtract_multiply():
    a, b = Input((6,), name="left"), Input((6,), name="right")
    shared = Dense(5, "tanh")
    left, right = shared(a), shared(b)
    joined = Concatenate()([Subtract()([left, right]), Multiply()([left, right])])
    return [a, b], [Dense(3, "softmax")(joined)]


def average_maximum_minimum():
    x = Input((6,))
    b1, b2, b3 = (Dense(5, "tanh")(x) for _ in range(3))
    merged = Concatenate()([Average()([b1, b2, b3]), Maximum()([b1, b2]), Minimum()([b2, b3, b1])])
    return [x], [Dense(3, "softmax")(merged)]


def residual_cnn():
    image = Input((6, 6, 2))
    h = Activation("relu")(BatchNorm()(Conv2D(4, 3, padding="same", use_bias=False)(image)))
    h = Conv2D(4, 3, strides=2, padding="same")(h)
    shortcut = Conv2D(4, 1, strides=2)(image)  # the 1x1 projection to the strided shape
    h = Activation("tanh")(Add()([h, shortcut]))
    return [image], [Dense(3, "softmax")(Flatten()(h))]


def inverted_residual():
    """MobileNetV2's block: expand, ReLU6, pad, depthwise, project, and the skip connection."""
    x = Input((6, 6, 4))
    h = ReLU(6.0)(BatchNorm()(Conv2D(8, 1, use_bias=False)(x)))
    h = ZeroPadding2D(1)(h)
    h = ReLU(6.0)(BatchNorm()(DepthwiseConv2D(3, use_bias=False)(h)))
    h = BatchNorm()(Conv2D(4, 1, use_bias=False)(h))
    return [x], [Dense(3, "softmax")(GlobalAveragePooling2D()(Add()([x, h])))]


def strided_depthwise_and_a_leaky_threshold():
    x = Input((7, 6, 3))
    h = DepthwiseConv2D((3, 2), strides=2, padding="same", depth_multiplier=2, activation="tanh")(x)
    h = ReLU(0.6, negative_slope=0.2, threshold=-0.1)(ZeroPadding2D(((1, 0), (0, 2)))(h))
    return [x], [Dense(3, "softmax")(Flatten()(h))]


GRAPHS = {
    "mobilenet's inverted residual": (inverted_residual, [(6, 6, 4)]),
    "strided depthwise, depth multiplier and a leaky thresholded relu": (
        strided_depthwise_and_a_leaky_threshold,
        [(7, 6, 3)],
    ),
    "residual mlp": (residual_mlp, [(6,)]),
    "two inputs, one also used directly": (two_inputs_concatenated, [(6,), (4,)]),
    "a shared dense on two inputs": (shared_dense_subtract_multiply, [(6,), (6,)]),
    "average, maximum and minimum": (average_maximum_minimum, [(6,)]),
    "residual cnn with batch norm and a projection": (residual_cnn, [(6, 6, 2)]),
}


@pytest.mark.parametrize("case", list(GRAPHS))
def test_graph_trains_as_pytorch(backend, case):
    build, shapes = GRAPHS[case]
    inputs, outputs = build()
    model = netcore.Model(inputs, outputs, device=backend.name, dtype="float64", seed=0)
    model.compile("adam", "cross_entropy")
    train_side_by_side(model, _data(shapes, "float64"), [_labels()], "float64")


def test_two_outputs_with_loss_weights_train_as_pytorch(backend):
    x = Input((6,))
    h = Dense(8, "tanh")(x)
    model = netcore.Model(
        x, [Dense(3, "softmax", name="cls")(h), Dense(2, name="box")(h)], device=backend.name, dtype="float64", seed=0
    )
    model.compile("adam", {"cls": "cross_entropy", "box": "mse"}, loss_weights={"cls": 1.0, "box": 0.5})
    box = np.random.default_rng(2).standard_normal((ROWS, 2))
    train_side_by_side(model, _data([(6,)], "float64"), [_labels(), box], "float64")


def test_a_frozen_nested_model_stays_as_it_was(backend):
    inner_input = Input((6,))
    inner = netcore.Model(inner_input, Dense(4, "tanh")(Dense(5, "tanh")(inner_input)), name="base")
    x = Input((6,))
    model = netcore.Model(x, Dense(3, "softmax")(inner(x)), device=backend.name, dtype="float64", seed=0)
    before = model.get_weights()[:4]
    inner.trainable = False
    model.compile("adam", "cross_entropy")
    train_side_by_side(model, _data([(6,)], "float64"), [_labels()], "float64")
    for got, want in zip(model.get_weights()[:4], before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_nested_model_called_on_two_inputs_shares_its_weights(backend):
    encoder_input = Input((6,))
    encoder = netcore.Model(encoder_input, Dense(4, "tanh")(encoder_input), name="encoder")
    a, b = Input((6,)), Input((6,))
    joined = Concatenate()([encoder(a), encoder(b)])
    model = netcore.Model([a, b], Dense(3, "softmax")(joined), device=backend.name, dtype="float64", seed=0)
    model.compile("adam", "cross_entropy")
    train_side_by_side(model, _data([(6,), (6,)], "float64"), [_labels()], "float64")


def test_float32_graph_matches_pytorch_to_float32_rounding(backend):
    inputs, outputs = residual_cnn()
    model = netcore.Model(inputs, outputs, device=backend.name, dtype="float32", seed=0)
    model.compile("adam", "cross_entropy")
    train_side_by_side(model, _data([(6, 6, 2)], "float32"), [_labels()], "float32")
