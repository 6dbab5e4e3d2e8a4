"""Models: what a network is (Keras's ``keras.models``). :class:`Model` is a graph of layer calls between inputs and
outputs (:mod:`~netcore.models.symbolic` records the calls, :mod:`~netcore.models.graph` orders them,
:mod:`~netcore.models.executor` runs them, :mod:`~netcore.models.parameters` holds the flat buffers);
:class:`Sequential` is the same engine with a graph that is a line. Training is mixed in from
:mod:`netcore.trainers`."""

from netcore.models.model import Model
from netcore.models.sequential import Sequential
from netcore.models.symbolic import Input, InputLayer, SymbolicTensor


def load_model(path, device=None) -> Model:
    """A model saved with :meth:`Model.save` (``.ncz``), restored onto ``device`` (default: where it was saved)."""
    from netcore.saving import load_model as load

    return load(path, device)


__all__ = ["Input", "InputLayer", "Model", "Sequential", "SymbolicTensor", "load_model"]
