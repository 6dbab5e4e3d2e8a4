"""PyTorch as the oracle for the image layers: the same convolutional networks with the same weights, trained side
by side for 48 steps on mini-batches, compared loss by loss and weight by weight (float64 to 1e-10 element by
element, float32 to 1e-5 relative to each tensor's norm, as the dense oracle).

The twin works channels-last between its modules as netcore does: each convolution or pooling module permutes to
PyTorch's channels-first layout and back, pads explicitly (Keras's "same" puts the smaller half on top and left,
which PyTorch's symmetric ``padding`` cannot), and the kernel ``(kh, kw, in, out)`` is PyTorch's ``(out, in, kh,
kw)`` transposed.
"""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import optimizers
from netcore.layers import (
    Activation,
    AveragePooling2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    Reshape,
    SpatialDropout2D,
)

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
nn, F = torch.nn, torch.nn.functional

from tests.core.oracle import ROWS, train_both  # noqa: E402
from tests.core.test_torch_oracle import TORCH_ACTIVATIONS, assert_close  # noqa: E402

DTYPES = ["float64", "float32"]


def _padding(window):
    """(left, right, top, bottom) of a netcore window, for ``F.pad`` on a channels-first tensor."""
    bottom = (window.out_h - 1) * window.sh + (window.kh - 1) * window.dh + 1 - window.in_h - window.pad_top
    right = (window.out_w - 1) * window.sw + (window.kw - 1) * window.dw + 1 - window.in_w - window.pad_left
    return (window.pad_left, max(right, 0), window.pad_top, max(bottom, 0))


class ChannelsLast(nn.Module):
    """Runs ``body`` on the channels-first view of a channels-last tensor."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PaddedConv(nn.Module):
    def __init__(self, layer, kernel, bias, dtype):
        super().__init__()
        self.pad = _padding(layer.window)
        self.conv = nn.Conv2d(
            layer.n_in,
            layer.filters,
            layer.kernel_size,
            stride=layer.strides,
            dilation=layer.dilation_rate,
            bias=layer.use_bias,
            dtype=dtype,
        )
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            if bias is not None:
                self.conv.bias.copy_(torch.from_numpy(bias))

    def forward(self, x):
        return self.conv(F.pad(x, self.pad))

    def netcore_weights(self):
        out = [self.conv.weight.detach().numpy().transpose(2, 3, 1, 0)]
        return out + ([self.conv.bias.detach().numpy()] if self.conv.bias is not None else [])


class PaddedMaxPool(nn.Module):
    def __init__(self, window):
        super().__init__()
        self.pad, self.window = _padding(window), window

    def forward(self, x):
        w = self.window
        return F.max_pool2d(F.pad(x, self.pad, value=-torch.inf), (w.kh, w.kw), (w.sh, w.sw))


class PaddedAvgPool(nn.Module):
    """The mean over each window's positions inside the image: a sum over the zero-padded window divided by how many
    positions of it are inside (Keras's "same")."""

    def __init__(self, window):
        super().__init__()
        self.pad, self.window = _padding(window), window

    def forward(self, x):
        w = self.window
        ones = torch.ones_like(x[:1, :1])
        total = F.avg_pool2d(F.pad(x, self.pad), (w.kh, w.kw), (w.sh, w.sw), divisor_override=1)
        count = F.avg_pool2d(F.pad(ones, self.pad), (w.kh, w.kw), (w.sh, w.sw), divisor_override=1)
        return total / count


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class SharedMask(nn.Module):
    """Dropout that applies the mask netcore's layer drew for the same step (broadcast for spatial dropout)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return x * torch.from_numpy(self.layer.backend.to_numpy(self.layer._mask).copy()).to(x.dtype)


class LinearLast(nn.Module):
    def __init__(self, layer, kernel, bias, dtype):
        super().__init__()
        self.linear = nn.Linear(layer.n_in, layer.units, bias=layer.use_bias, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            if bias is not None:
                self.linear.bias.copy_(torch.from_numpy(bias))

    def forward(self, x):
        return self.linear(x)

    def netcore_weights(self):
        out = [self.linear.weight.detach().numpy().T]
        return out + ([self.linear.bias.detach().numpy()] if self.linear.bias is not None else [])


class ChannelNorm(nn.Module):
    def __init__(self, layer, weights, dtype, frozen):
        super().__init__()
        self.bn = nn.BatchNorm2d(layer.n_in, eps=layer.eps, momentum=layer.momentum, dtype=dtype)
        with torch.no_grad():
            tensors = (self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var)
            for tensor, value in zip(tensors, weights, strict=True):
                tensor.copy_(torch.from_numpy(value))
        self.frozen = frozen

    def forward(self, x):
        if self.frozen:
            self.bn.eval()  # a frozen netcore BatchNorm normalises with its running statistics
        return self.bn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def netcore_weights(self):
        return [t.detach().numpy() for t in (self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var)]


def torch_twin(model, dtype):
    """The same network in PyTorch, channels-last between modules, with the same weights (a final softmax that
    netcore fuses into the loss is left out: the torch loss takes logits)."""
    tdtype = getattr(torch, dtype)
    weights = model.get_weights()
    modules = []
    for i, layer in enumerate(model.layers):
        fused = i == len(model.layers) - 1 and model.fused_outputs[0]
        if isinstance(layer, Conv2D):
            kernel = weights.pop(0)
            bias = weights.pop(0) if layer.use_bias else None
            modules.append(ChannelsLast(PaddedConv(layer, kernel, bias, tdtype)))
        elif isinstance(layer, Dense):
            kernel = weights.pop(0)
            bias = weights.pop(0) if layer.use_bias else None
            modules.append(LinearLast(layer, kernel, bias, tdtype))
        elif isinstance(layer, BatchNorm):
            modules.append(ChannelNorm(layer, [weights.pop(0) for _ in range(4)], tdtype, not layer.trainable))
        elif isinstance(layer, MaxPooling2D):
            modules.append(ChannelsLast(PaddedMaxPool(layer.window)))
        elif isinstance(layer, AveragePooling2D):
            modules.append(ChannelsLast(PaddedAvgPool(layer.window)))
        elif isinstance(layer, GlobalAveragePooling2D):
            modules.append(Lambda(lambda x: x.mean(dim=(1, 2))))
        elif isinstance(layer, GlobalMaxPooling2D):
            modules.append(Lambda(lambda x: F.adaptive_max_pool2d(x.permute(0, 3, 1, 2), 1).flatten(1)))
        elif isinstance(layer, Flatten):
            modules.append(Lambda(lambda x: x.reshape(x.shape[0], -1)))
        elif isinstance(layer, Reshape):
            modules.append(Lambda(lambda x, shape=layer.output_shape: x.reshape(x.shape[0], *shape)))
        elif isinstance(layer, (Dropout, SpatialDropout2D)):
            modules.append(SharedMask(layer))
        if hasattr(layer, "activation") and not fused and layer.activation.kind != "linear":
            act = TORCH_ACTIVATIONS[layer.activation.kind](layer.activation.alpha)
            modules.append(Lambda(lambda x, act=act: act(x.reshape(-1, x.shape[-1])).reshape(x.shape)))
        if not layer.trainable:
            for parameter in modules[-1].parameters():
                parameter.requires_grad_(False)
    return nn.Sequential(*modules)


def ordered_twin_weights(twin):
    """The twin's weights in netcore's get_weights order."""
    out = []
    for module in twin:
        inner = module.body if isinstance(module, ChannelsLast) else module
        out += getattr(inner, "netcore_weights", lambda: [])()
    return out


def images(shape, dtype, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((ROWS, *shape)).astype(dtype), rng.integers(0, classes, ROWS)


def train_side_by_side(layers, shape, dtype, optimizer=("Adam", dict(lr=1e-2)), device="numpy"):
    name, options = optimizer
    model = netcore.Sequential(layers, input_shape=shape, device=device, dtype=dtype, seed=0)
    model.compile(getattr(optimizers, name)(**options), "cross_entropy")
    twin = torch_twin(model, dtype)
    trained = [p for p in twin.parameters() if p.requires_grad]
    torch_optimizer = getattr(torch.optim, name)(trained, **options)
    X, y = images(shape, dtype)
    train_both(model, twin, torch_optimizer, X, y, dtype, lambda: ordered_twin_weights(twin))
    return model, twin, X


CASES = {
    "lenet same and valid": (
        (10, 9, 2),
        lambda: [
            Conv2D(4, 5, padding="same", activation="relu"),
            MaxPooling2D(2),
            Conv2D(5, 3, activation="tanh"),
            MaxPooling2D(2, padding="same"),
            Flatten(),
            Dense(7, "relu"),
            Dense(3, "softmax"),
        ],
    ),
    "strides dilation odd sizes": (
        (9, 7, 3),
        lambda: [
            Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="elu"),
            Conv2D(3, 3, dilation_rate=2, padding="same", activation="gelu"),
            AveragePooling2D(3, strides=2, padding="same"),
            Conv2D(5, (2, 2), strides=(1, 2), use_bias=False),
            GlobalMaxPooling2D(),
            Dense(3, "softmax"),
        ],
    ),
    "wide inputs: input gradients by window positions": (
        (7, 6, 2),
        lambda: [
            Conv2D(16, 3, padding="same", activation="relu"),
            Conv2D(4, 3, strides=2, padding="same", activation="tanh"),
            Conv2D(3, 2, dilation_rate=2),
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "patches pixel by pixel, bias and ReLU in the pooling": (
        (8, 7, 6),
        lambda: [
            Conv2D(8, 3, padding="same", activation="relu"),  # window rows of 3 x 6 values (numba: pixel by pixel)
            MaxPooling2D(2),  # the numba backend applies the convolution's bias and ReLU here
            Conv2D(6, (2, 3), padding="same", activation="relu", use_bias=False),
            MaxPooling2D(2, padding="same"),
            Conv2D(5, 2, strides=(1, 2)),
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "winograd: 3x3 at stride 1 from 16 channels": (
        (7, 6, 16),
        lambda: [
            Conv2D(16, 3, padding="same", activation="relu"),  # odd height: tiles past the bottom edge (numba)
            MaxPooling2D(2),  # the numba backend applies the Winograd output's bias and ReLU here
            Conv2D(17, 3, activation="tanh", use_bias=False),  # valid: the input gradient padded by 2
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "valid pooling with overlap": (
        (8, 8, 1),
        lambda: [
            Conv2D(3, 2, activation="sigmoid"),
            MaxPooling2D(3, strides=2),
            AveragePooling2D((2, 1), strides=1),
            Flatten(),
            Dense(3, "softmax"),
        ],
    ),
    "batch norm over channels": (
        (6, 6, 2),
        lambda: [
            Conv2D(4, 3, padding="same", use_bias=False),
            BatchNorm(),
            Activation("relu"),
            Conv2D(4, 1, use_bias=False),  # a bias before batch norm has a zero gradient: nothing to compare
            BatchNorm(momentum=0.3),
            GlobalAveragePooling2D(),
            Dense(3, "softmax"),
        ],
    ),
    "dense on the channel axis and reshape": (
        (48,),
        lambda: [
            Reshape((4, 4, 3)),
            Conv2D(4, 3, padding="same", activation="tanh"),
            Dense(5, "relu"),
            SpatialDropout2D(0.3),
            Flatten(),
            Dropout(0.2),
            Dense(3, "softmax"),
        ],
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_image_network(case, dtype):
    shape, layers = CASES[case]
    train_side_by_side(layers(), shape, dtype)


@pytest.mark.parametrize(
    "case",
    ["lenet same and valid", "wide inputs: input gradients by window positions",
     "patches pixel by pixel, bias and ReLU in the pooling", "winograd: 3x3 at stride 1 from 16 channels"],
)  # fmt: skip
def test_image_network_on_numba(case):
    """The numba backend's own image paths (patches and input gradients pixel by pixel, pooling that applies the
    convolution's bias and ReLU, Winograd's 3x3 convolutions) against PyTorch, in float64: in float32 its sums, in
    other orders than NumPy's, drift up to a few 1e-5 from PyTorch's over Adam's steps (as they did before these
    paths)."""
    shape, layers = CASES[case]
    train_side_by_side(layers(), shape, "float64", device="numba")


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_sgd_with_momentum_on_numba_too(device):
    shape, layers = CASES["lenet same and valid"]
    train_side_by_side(layers(), shape, "float64", ("SGD", dict(lr=0.05, momentum=0.9)), device)


def test_evaluation_mode_outputs():
    shape, layers = CASES["batch norm over channels"]
    model, twin, X = train_side_by_side(layers(), shape, "float64")
    twin.eval()
    with torch.no_grad():
        expected = torch.softmax(twin(torch.from_numpy(X)), dim=1).numpy()
    assert_close(model.predict(X), expected, "float64", "evaluation-mode outputs")


@pytest.mark.parametrize("dtype", DTYPES)
def test_frozen_layers_and_frozen_batch_norm(dtype):
    conv, norm = Conv2D(4, 3, padding="same", use_bias=False, trainable=False), BatchNorm(trainable=False)
    layers = [conv, norm, Activation("relu"), Conv2D(3, 3), GlobalAveragePooling2D(), Dense(3, "softmax")]
    model, _, _ = train_side_by_side(layers, (7, 7, 2), dtype)
    assert model.summary(print_fn=None).count("non-trainable parameters: 88")
