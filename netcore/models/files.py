"""Where a model's files are written and read (persistence and export, apart from what the model is): netcore's
``.ncz`` checkpoints (:mod:`netcore.saving`), Keras's ``.keras`` and ``.weights.h5`` (:mod:`netcore.keras_files`) and
ONNX (:mod:`netcore.onnx_export`). Mixed into :class:`netcore.models.Model`."""

from __future__ import annotations

import os

from netcore.errors import ConfigurationError


class Files:
    def save(self, path) -> None:
        """Write the model, its training state and (during fit) its callbacks' state to one ``.ncz`` checkpoint
        file; a path ending in ``.keras`` writes a Keras archive instead (architecture and weights, which
        ``keras.models.load_model`` reads)."""
        if os.fspath(path).endswith(".keras"):
            from netcore import keras_files

            keras_files.save(self, path)
            return
        from netcore.saving import save_model

        save_model(self, path)

    def load_weights(self, path) -> None:
        """Read weights from a Keras file: Keras 3's ``.weights.h5``, or the older HDF5 layout (the
        ``keras.applications`` weight files), matched by layer name (in order where the names differ). A file that
        does not fit raises CheckpointError naming the layer and the shapes, and changes nothing."""
        from netcore import keras_files

        keras_files.load_weights(self, path)

    def save_weights(self, path) -> str:
        """Write the weights as Keras 3's ``.weights.h5`` (``keras.Model.load_weights`` reads it)."""
        from netcore import keras_files

        return keras_files.save_weights(self, path)

    def export(self, path, format: str = "onnx", opset: int = 17) -> str:
        """Write the model for other runtimes: ``format="onnx"`` (the extra ``onnx``) writes a standard ONNX model
        that computes :meth:`predict` (see :mod:`netcore.onnx_export`). A layer that cannot be exported raises
        ConfigurationError naming it, before anything is written."""
        if format != "onnx":
            raise ConfigurationError(f"export format must be 'onnx', got {format!r}")
        from netcore import onnx_export

        return onnx_export.export(self, path, opset)
