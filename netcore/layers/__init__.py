"""Layers, one module per family (as Keras): :mod:`~netcore.layers.base` (what a layer is), :mod:`~netcore.layers.core`
(Dense, Activation), :mod:`~netcore.layers.regularization` (Dropout, SpatialDropout2D, GaussianNoise),
:mod:`~netcore.layers.normalization` (BatchNorm; BatchNormalization with Keras's defaults),
:mod:`~netcore.layers.convolution` (Conv2D), :mod:`~netcore.layers.pooling` (max, average and global pooling) and
:mod:`~netcore.layers.reshaping` (Flatten, Reshape), :mod:`~netcore.layers.augmentation` (random flips, translations,
rotations, zooms, brightness, contrast and erasing), :mod:`~netcore.layers.recurrent` (SimpleRNN, LSTM, GRU),
:mod:`~netcore.layers.bidirectional` (Bidirectional), :mod:`~netcore.layers.sequence` (Masking,
GlobalAveragePooling1D) and :mod:`~netcore.layers.merging` (Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate) and :mod:`~netcore.layers.embedding` (Embedding) and :mod:`~netcore.layers.preprocessing` (Rescaling).
``Input`` (from :mod:`netcore.models`) starts a functional model."""

from __future__ import annotations

from netcore import activations
from netcore.layers.augmentation import (
    RandomBrightness,
    RandomContrast,
    RandomErasing,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from netcore.layers.base import Layer, ParamSpec, StateSpec
from netcore.layers.bidirectional import Bidirectional
from netcore.layers.convolution import Conv2D, DepthwiseConv2D
from netcore.layers.core import Activation, Dense, ReLU
from netcore.layers.embedding import Embedding
from netcore.layers.merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from netcore.layers.normalization import BatchNorm, BatchNormalization
from netcore.layers.pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)
from netcore.layers.preprocessing import Rescaling
from netcore.layers.recurrent import GRU, LSTM, SimpleRNN
from netcore.layers.regularization import Dropout, GaussianNoise, SpatialDropout2D
from netcore.layers.reshaping import Flatten, Reshape, ZeroPadding2D
from netcore.layers.sequence import GlobalAveragePooling1D, Masking

_LAYERS = {
    cls.__name__: cls
    for cls in (
        Dense,
        Activation,
        Dropout,
        SpatialDropout2D,
        GaussianNoise,
        BatchNorm,
        BatchNormalization,
        Conv2D,
        MaxPooling2D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        Flatten,
        Reshape,
        RandomFlip,
        RandomTranslation,
        RandomRotation,
        RandomZoom,
        RandomBrightness,
        RandomContrast,
        RandomErasing,
        SimpleRNN,
        LSTM,
        GRU,
        Masking,
        GlobalAveragePooling1D,
        Bidirectional,
        Add,
        Subtract,
        Multiply,
        Average,
        Maximum,
        Minimum,
        Concatenate,
        Embedding,
        Rescaling,
        ReLU,
        DepthwiseConv2D,
        ZeroPadding2D,
    )
}


def from_config(kind: str, config: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.config` (the activation parameter travels as ``activation_alpha``)."""
    config = dict(config)
    if "layer" in config:  # a wrapper (Bidirectional): its layer first
        config["layer"] = from_config(config["layer"]["class"], config["layer"]["config"])
    alpha = config.pop("activation_alpha", None)
    if "activation" in config:
        config["activation"] = activations.Activation(config["activation"], alpha or 0.0)
    return _LAYERS[kind](**config)


def __getattr__(name: str):
    """``netcore.layers.Input`` and ``InputLayer`` (they live with the models that they start)."""
    if name in ("Input", "InputLayer"):
        from netcore import models

        return getattr(models, name)
    raise AttributeError(f"module 'netcore.layers' has no attribute {name!r}")


__all__ = ["Input", "InputLayer", "Layer", "ParamSpec", "StateSpec", "from_config", *_LAYERS]
