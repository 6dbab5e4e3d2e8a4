"""MobileNetV2 (Sandler et al., 2018): inverted residual blocks of depthwise convolutions and ReLU6, with Keras's
layer names, ``alpha`` (width multiplier), weight order and weight files."""

from __future__ import annotations

import warnings

from netcore.applications import imagenet
from netcore.errors import ConfigurationError
from netcore.layers import Add, BatchNormalization, Conv2D, DepthwiseConv2D, Input, ReLU, ZeroPadding2D
from netcore.models import Model

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
#: (expansion, filters, blocks, first stride) of each stage after the first block.
_STAGES = ((6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_SIZES = (96, 128, 160, 192, 224)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of ``divisor``, never more than 10% below ``value`` (the paper's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _norm(name: str):
    return BatchNormalization(epsilon=1e-3, momentum=0.999, name=name)


def _correct_pad(size: tuple[int, int], kernel: int = 3):
    """The zero padding before a stride-2 3x3 depthwise convolution (Keras's ``correct_pad``)."""
    adjust = (1 - size[0] % 2, 1 - size[1] % 2)
    half = kernel // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def _inverted_residual(x, expansion: int, stride: int, alpha: float, filters: int, block: int):
    channels = x.shape[-1]
    project = make_divisible(int(filters * alpha))
    inputs, prefix = x, f"block_{block}_" if block else "expanded_conv_"
    if block:
        x = Conv2D(expansion * channels, 1, padding="same", use_bias=False, name=f"{prefix}expand")(x)
        x = ReLU(6.0, name=f"{prefix}expand_relu")(_norm(f"{prefix}expand_BN")(x))
    if stride == 2:
        x = ZeroPadding2D(_correct_pad(x.shape[1:3]), name=f"{prefix}pad")(x)
    padding = "same" if stride == 1 else "valid"
    x = DepthwiseConv2D(3, strides=stride, use_bias=False, padding=padding, name=f"{prefix}depthwise")(x)
    x = ReLU(6.0, name=f"{prefix}depthwise_relu")(_norm(f"{prefix}depthwise_BN")(x))
    x = _norm(f"{prefix}project_BN")(Conv2D(project, 1, padding="same", use_bias=False, name=f"{prefix}project")(x))
    if channels == project and stride == 1:
        return Add(name=f"{prefix}add")([inputs, x])
    return x


def MobileNetV2(  # noqa: N802 - Keras's name
    input_shape=None,
    alpha=1.0,
    include_top=True,
    weights="imagenet",
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    **options,
):
    """MobileNetV2: a stride-2 3x3 convolution, 17 inverted residual blocks (1x1 expansion, 3x3 depthwise, 1x1
    projection; a skip connection where shapes allow), a 1x1 convolution to 1280 channels, then (with the top)
    global average pooling and the classifier. ``alpha`` scales every layer's width; ImageNet weights exist for
    ``alpha`` in 0.35, 0.5, 0.75, 1.0, 1.3, 1.4 and square inputs of 96 to 224 pixels. Other arguments as
    :func:`netcore.applications.VGG16`."""
    imagenet.check_arguments(weights, include_top, classes)
    rows = input_shape[0] if input_shape and input_shape[0] == input_shape[1] and input_shape[0] in _SIZES else 224
    shape = imagenet.input_shape_for(input_shape, rows, include_top, weights)
    if weights == "imagenet":
        if alpha not in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
            raise ConfigurationError(f"ImageNet weights exist for alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, not {alpha}")
        if shape[0] != shape[1] or shape[0] not in _SIZES:
            rows = 224
            warnings.warn("the input is not square of 96 to 224 pixels: the weights for 224 are loaded", stacklevel=2)
    inputs = Input(shape, name="input_layer")
    x = Conv2D(make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="Conv1")(inputs)
    x = ReLU(6.0, name="Conv1_relu")(_norm("bn_Conv1")(x))
    x = _inverted_residual(x, 1, 1, alpha, 16, 0)
    block = 1
    for expansion, filters, blocks, stride in _STAGES:
        for k in range(blocks):
            x = _inverted_residual(x, expansion, stride if k == 0 else 1, alpha, filters, block)
            block += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = ReLU(6.0, name="out_relu")(_norm("Conv_1_bn")(Conv2D(last, 1, use_bias=False, name="Conv_1")(x)))
    x = imagenet.top(x, include_top, pooling, classes, classifier_activation)
    model = Model(inputs, x, name=name or f"mobilenetv2_{alpha:0.2f}_{rows}", **options)
    stem = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
    top_file, notop_file = ((f"{stem}{end}.h5", f"{_BASE}{stem}{end}.h5", None) for end in ("", "_no_top"))
    return imagenet.finish(model, weights, top_file, notop_file, include_top)


def preprocess_input(x):
    """Keras's MobileNetV2 preprocessing ("tf"): pixels in [0, 255] to [-1, 1]."""
    return imagenet.preprocess(x, "tf")
