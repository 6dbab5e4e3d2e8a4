"""Host-side helpers under the names Keras code uses (``from netcore.utils import to_categorical``):
``to_categorical``, ``pad_sequences`` and ``Tokenizer`` (:mod:`netcore.text`), and
``image_dataset_from_directory`` (:mod:`netcore.image_folders`, the extra ``images``)."""

from __future__ import annotations

import numpy as np

from netcore.errors import ShapeError
from netcore.text import Tokenizer, pad_sequences

__all__ = ["Tokenizer", "image_dataset_from_directory", "pad_sequences", "to_categorical"]


def image_dataset_from_directory(directory, **options):
    """Images in class folders as a data set ``fit``, ``evaluate`` and ``predict`` take (see
    :func:`netcore.image_folders.image_dataset_from_directory`)."""
    from netcore.image_folders import image_dataset_from_directory as load

    return load(directory, **options)


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """Class indices as one-hot rows, as Keras's ``to_categorical``: ``y`` of any shape gains a last axis of
    ``num_classes`` (default: the largest label + 1); a trailing axis of size 1 is dropped first."""
    labels = np.asarray(y)
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise ShapeError("to_categorical takes integer class labels")
    labels = labels.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.size and labels.min() < 0:
        raise ShapeError(f"to_categorical takes class labels >= 0, got {labels.min()}")
    count = int(labels.max()) + 1 if num_classes is None and labels.size else int(num_classes or 0)
    if labels.size and labels.max() >= count:
        raise ShapeError(f"label {labels.max()} does not fit num_classes={count}")
    out = np.zeros((*labels.shape, count), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
