"""Training, kept apart from the topology (Keras 3's ``trainers``): :class:`Trainer` (compile, fit, evaluate,
predict; mixed into every model), :mod:`~netcore.trainers.heads` (losses and metrics per output),
:mod:`~netcore.trainers.data` (checked inputs and targets), :mod:`~netcore.trainers.loop` (epochs, batches,
callbacks), :mod:`~netcore.trainers.scoring` (evaluation passes) and :mod:`~netcore.trainers.cuda_graphs` (steps
recorded as CUDA graphs)."""

from netcore.trainers.history import History
from netcore.trainers.trainer import Trainer

__all__ = ["History", "Trainer"]
