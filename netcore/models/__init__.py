"""Models: what a network is (Keras's ``keras.models``). :class:`Model` is a graph of layer calls between inputs and
outputs (:mod:`~netcore.models.symbolic` records the calls, :mod:`~netcore.models.graph` orders them,
:mod:`~netcore.models.executor` runs them, :mod:`~netcore.models.parameters` holds the flat buffers);
:class:`Sequential` is the same engine with a graph that is a line. Training is mixed in from
:mod:`netcore.trainers`."""

from netcore.models.model import Model
from netcore.models.sequential import Sequential
from netcore.models.symbolic import Input, InputLayer, SymbolicTensor


def load_model(path, device=None) -> Model:
    """A model from a file: netcore's ``.ncz`` (restored onto ``device``, default where it was saved, with its
    training state), or Keras's ``.keras`` archive or full-model ``.h5`` (onto ``device``, default the active one)."""
    import os

    if os.fspath(path).endswith((".keras", ".h5")):
        from netcore import keras_files

        return keras_files.load(path, device)
    from netcore.saving import load_model as load

    return load(path, device)


__all__ = ["Input", "InputLayer", "Model", "Sequential", "SymbolicTensor", "load_model"]
