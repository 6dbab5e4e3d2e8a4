"""VGG16 and VGG19 (Simonyan and Zisserman, 2015), with Keras's layer names, weight order and weight files."""

from __future__ import annotations

from netcore.applications import imagenet
from netcore.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from netcore.models import Model

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
#: (file, address, Keras's MD5) of each network's weights with and without the top.
_FILES = {
    "vgg16": (
        ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
        ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    ),
    "vgg19": (
        ("vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318"),
        ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"),
    ),
}
#: Convolutions per block.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def _vgg(family, include_top, weights, input_shape, pooling, classes, classifier_activation, name, **options):
    imagenet.check_arguments(weights, include_top, classes)
    shape = imagenet.input_shape_for(input_shape, 224, include_top, weights)
    inputs = Input(shape, name="input_layer")
    x = inputs
    widths = zip(_BLOCKS[family], (64, 128, 256, 512, 512), strict=True)
    for block, (convolutions, filters) in enumerate(widths, start=1):
        for k in range(1, convolutions + 1):
            x = Conv2D(filters, 3, activation="relu", padding="same", name=f"block{block}_conv{k}")(x)
        x = MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    if include_top:
        x = Dense(4096, activation="relu", name="fc1")(Flatten(name="flatten")(x))
        x = Dense(4096, activation="relu", name="fc2")(x)
    x = imagenet.top(x, include_top, pooling, classes, classifier_activation, pool_first=False)
    model = Model(inputs, x, name=name or family, **options)
    (top_file, top_hash), (notop_file, notop_hash) = _FILES[family]
    files = [(f, f"{_BASE}{family}/{f}", h) for f, h in ((top_file, top_hash), (notop_file, notop_hash))]
    return imagenet.finish(model, weights, files[0], files[1], include_top)


def VGG16(  # noqa: N802 - Keras's name
    include_top=True,
    weights="imagenet",
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    **options,
):
    """VGG16: 13 convolutions in five blocks, then (``include_top``) two 4096-unit layers and the classifier.

    Keras's arguments: ``weights`` is None (random), a path to a weights file (Keras's HDF5 layouts) or
    ``"imagenet"`` (Keras's file, from its cache or its address); ``input_shape`` defaults to ``(224, 224, 3)``;
    ``pooling`` ``"avg"`` or ``"max"`` without the top. ``device``, ``dtype`` and ``seed`` go to the model."""
    return _vgg("vgg16", include_top, weights, input_shape, pooling, classes, classifier_activation, name, **options)


def VGG19(  # noqa: N802
    include_top=True,
    weights="imagenet",
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    **options,
):
    """VGG19: as :func:`VGG16` with four convolutions in each of the last three blocks."""
    return _vgg("vgg19", include_top, weights, input_shape, pooling, classes, classifier_activation, name, **options)


def preprocess_input(x):
    """Keras's VGG preprocessing ("caffe"): RGB in [0, 255] to BGR, minus ImageNet's mean pixel."""
    return imagenet.preprocess(x, "caffe")
