"""ResNet50 (He et al., 2015): bottleneck residual blocks with projection shortcuts, Keras's layer names, weight
order and weight files."""

from __future__ import annotations

from netcore.applications import imagenet
from netcore.layers import Activation, Add, BatchNormalization, Conv2D, Input, MaxPooling2D, ZeroPadding2D
from netcore.models import Model

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_HASHES = ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626")
#: Keras's batch norm epsilon for ResNet.
EPSILON = 1.001e-5


def _norm(name: str):
    return BatchNormalization(epsilon=EPSILON, name=name)


def _block(x, filters: int, stride: int, shortcut: bool, name: str):
    """A bottleneck block: 1x1, 3x3 and 1x1 (4 * filters) convolutions, each with batch norm, plus the shortcut
    (a strided 1x1 projection where ``shortcut``, else the input itself)."""
    skip = _norm(f"{name}_0_bn")(Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)) if shortcut else x
    x = Activation("relu", name=f"{name}_1_relu")(_norm(f"{name}_1_bn")(
        Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)))  # fmt: skip
    x = Activation("relu", name=f"{name}_2_relu")(_norm(f"{name}_2_bn")(
        Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)))  # fmt: skip
    x = _norm(f"{name}_3_bn")(Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x))
    return Activation("relu", name=f"{name}_out")(Add(name=f"{name}_add")([skip, x]))


def _stack(x, filters: int, blocks: int, stride: int, name: str):
    x = _block(x, filters, stride, True, f"{name}_block1")
    for k in range(2, blocks + 1):
        x = _block(x, filters, 1, False, f"{name}_block{k}")
    return x


def ResNet50(  # noqa: N802 - Keras's name
    include_top=True,
    weights="imagenet",
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet50",
    **options,
):
    """ResNet50: a 7x7 stride-2 convolution and max pooling, then 3, 4, 6 and 3 bottleneck blocks, then (with the
    top) global average pooling and the classifier. Arguments as :func:`netcore.applications.VGG16`."""
    imagenet.check_arguments(weights, include_top, classes)
    inputs = Input(imagenet.input_shape_for(input_shape, 224, include_top, weights), name="input_layer")
    x = Conv2D(64, 7, strides=2, name="conv1_conv")(ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(inputs))
    x = Activation("relu", name="conv1_relu")(_norm("conv1_bn")(x))
    x = MaxPooling2D(3, strides=2, name="pool1_pool")(ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x))
    x = _stack(x, 64, 3, 1, "conv2")
    x = _stack(x, 128, 4, 2, "conv3")
    x = _stack(x, 256, 6, 2, "conv4")
    x = _stack(x, 512, 3, 2, "conv5")
    x = imagenet.top(x, include_top, pooling, classes, classifier_activation, names=("avg_pool", "max_pool"))
    model = Model(inputs, x, name=name, **options)
    names = [f"resnet50_weights_tf_dim_ordering_tf_kernels{end}.h5" for end in ("", "_notop")]
    top_file, notop_file = ((f, _BASE + f, h) for f, h in zip(names, _HASHES, strict=True))
    return imagenet.finish(model, weights, top_file, notop_file, include_top)


def preprocess_input(x):
    """Keras's ResNet preprocessing ("caffe"): RGB in [0, 255] to BGR, minus ImageNet's mean pixel."""
    return imagenet.preprocess(x, "caffe")
