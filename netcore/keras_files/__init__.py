"""Keras's files, read and written without Keras (the extra ``keras``: h5py): weight files (``.weights.h5``, and the
older HDF5 layout of the ``keras.applications`` weights), ``.keras`` archives in and out, and full-model ``.h5``
files in. Keras layers netcore has are mapped with their settings; anything else is refused by name, and nothing
from a file is executed. netcore's ``.ncz`` stays the format for everything else (optimizer state, exact resume)."""

from netcore.keras_files.archives import load, save
from netcore.keras_files.weights import load_weights, save_weights

__all__ = ["load", "load_weights", "save", "save_weights"]
