"""What the pretrained networks share: Keras's input-shape rules, its ImageNet preprocessing, the top of a network
(classifier or pooling), and finding their weight files (a path, or ``"imagenet"``: Keras's cache, else Keras's own
address, checked against Keras's hash)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import numpy as np

from netcore.errors import ConfigurationError, DataError

#: Keras's per-channel ImageNet means (BGR) for "caffe" preprocessing, and the "torch" mode's mean and deviation.
CAFFE_MEAN = (103.939, 116.779, 123.68)
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def input_shape_for(input_shape, default_size: int, include_top: bool, weights, min_size: int = 32):
    """Keras's rules: with the top (a Flatten or fixed classifier) the shape is fixed to the default with
    ImageNet weights; images are channels-last, at least ``min_size`` pixels a side, 3 channels with ImageNet
    weights."""
    default = (default_size, default_size, 3)
    if weights == "imagenet" and include_top:
        if input_shape is not None and tuple(input_shape) != default:
            raise ConfigurationError(f"with include_top=True and ImageNet weights, input_shape must be {default}")
        return default
    if input_shape is None:
        return default
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3:
        raise ConfigurationError(f"input_shape must be (height, width, channels), got {input_shape!r}")
    if weights == "imagenet" and shape[2] != 3:
        raise ConfigurationError(f"ImageNet weights take 3 channels, got input_shape={shape}")
    if shape[0] < min_size or shape[1] < min_size:
        raise ConfigurationError(f"input size must be at least {min_size}x{min_size}, got input_shape={shape}")
    return shape


def check_arguments(weights, include_top: bool, classes: int) -> None:
    if not (weights in (None, "imagenet") or os.path.exists(os.fspath(weights))):
        raise ConfigurationError(
            f"weights must be None (random), 'imagenet' or the path of a weights file; {weights!r} does not exist"
        )
    if weights == "imagenet" and include_top and classes != 1000:
        raise ConfigurationError(f"ImageNet weights with include_top=True have 1000 classes, not {classes}")


def top(x, include_top: bool, pooling, classes: int, classifier_activation, pool_first=True, names=(None, None)):
    """The classifier (after global average pooling where ``pool_first``) or, without it, the optional global
    pooling; ``names`` are Keras's names of the average and max pooling layers where it gives them names."""
    from netcore.layers import Dense, GlobalAveragePooling2D, GlobalMaxPooling2D

    if pooling not in (None, "avg", "max"):
        raise ConfigurationError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top:
        if pool_first:
            x = GlobalAveragePooling2D(name=names[0])(x)
        return Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return GlobalAveragePooling2D(name=names[0])(x)
    if pooling == "max":
        return GlobalMaxPooling2D(name=names[1])(x)
    return x


def preprocess(x, mode: str) -> np.ndarray:
    """Keras's ImageNet preprocessing of RGB images in [0, 255] (channels-last): ``"caffe"`` to BGR minus the
    mean pixel, ``"tf"`` to [-1, 1], ``"torch"`` to [0, 1] then standardised per channel. A new float32 array."""
    x = np.array(x, dtype=np.float32)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - np.array(TORCH_MEAN, np.float32)) / np.array(TORCH_STD, np.float32)
    return x[..., ::-1] - np.array(CAFFE_MEAN, np.float32)


# ----------------------------------------------------------------------------------------------- weight files
def keras_cache() -> str:
    """Keras's cache of downloaded models: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def _digest(path: str, expected: str) -> str:
    algorithm = hashlib.sha256() if len(expected) == 64 else hashlib.md5()  # noqa: S324 - Keras's file hashes
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            algorithm.update(chunk)
    return algorithm.hexdigest()


def imagenet_weights(file_name: str, url: str, file_hash: str | None) -> str:
    """The path of Keras's ImageNet weight file ``file_name``: in Keras's cache when there, else downloaded from
    ``url`` into it and checked against ``file_hash`` (MD5 or SHA-256, as Keras gives it)."""
    cached = os.path.join(keras_cache(), file_name)
    if os.path.exists(cached):
        if file_hash and _digest(cached, file_hash) != file_hash:
            raise DataError(f"{cached} does not have Keras's hash {file_hash}: delete it and fetch it again from {url}")
        return cached
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    try:
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            tempfile.NamedTemporaryFile(dir=os.path.dirname(cached), delete=False) as partial,
        ):
            shutil.copyfileobj(response, partial)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(
            f"the ImageNet weights {file_name} are not in Keras's cache and could not be downloaded ({exc}); "
            f"download {url} and put it at {cached} (or set KERAS_HOME to a folder whose models/ holds it)"
        ) from None
    if file_hash and _digest(partial.name, file_hash) != file_hash:
        os.unlink(partial.name)
        raise DataError(f"the download of {url} does not have Keras's hash {file_hash}; try again")
    os.replace(partial.name, cached)
    return cached


def finish(model, weights, top_files: tuple[str, str, str | None], notop_files: tuple[str, str, str | None],
           include_top: bool):  # fmt: skip
    """Load the weights asked for: a path, or ``"imagenet"`` (the family's file with or without its top)."""
    if weights == "imagenet":
        model.load_weights(imagenet_weights(*(top_files if include_top else notop_files)))
    elif weights is not None:
        model.load_weights(weights)
    return model
