"""What every layer is: a small class that builds from an input shape, declares its parameters, and has ``forward``
and ``backward``.

A layer never allocates its parameters: it declares them (:meth:`Layer.param_specs`) and the model hands it views
into one flat buffer per kind (parameters, gradients), so an optimizer step is one kernel over the whole model.
Activations and gradients between layers live in per-batch-size work buffers the layer keeps, so a training step
allocates nothing once the first batch of each size has passed. ``backward`` may overwrite the ``dy`` it is given.

Shapes are given without the batch axis: ``(features,)`` for tables, ``(height, width, channels)`` for images
(channels last, as in Keras).
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass

from netcore import initializers, regularizers
from netcore.errors import ConfigurationError, NetcoreError


@dataclass
class ParamSpec:
    """A parameter a layer declares: its name, shape, initialiser, penalty, constraint and (fan_in, fan_out)."""

    name: str
    shape: tuple[int, ...]
    initializer: initializers.Initializer
    regularizer: regularizers.Regularizer | None = None
    constraint: regularizers.MaxNorm | None = None
    fan: tuple[int, int] = (1, 1)


@dataclass
class StateSpec:
    """A non-trainable array a layer keeps across steps (batch norm's running statistics)."""

    name: str
    shape: tuple[int, ...]
    initial: float


def positive_int(owner: str, what: str, value) -> int:
    """``value`` if it is a positive integer, else a ConfigurationError naming the layer and the argument."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{owner} {what} must be a positive integer, got {value!r}")
    return value


def pair(owner: str, what: str, value) -> tuple[int, int]:
    """An int or a pair of ints (Keras's ``kernel_size=3`` or ``(3, 5)``) as a checked pair of positive ints."""
    values = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        raise ConfigurationError(f"{owner} {what} must be an int or a pair of ints, got {value!r}") from None
    if len(values) != 2:
        raise ConfigurationError(f"{owner} {what} must be an int or a pair of ints, got {value!r}")
    return tuple(positive_int(owner, what, v) for v in values)


def sample_shape(input_dim, input_shape) -> tuple[int, ...] | None:
    """A sample's shape from ``input_dim`` (an int: a table of that many features) or ``input_shape`` (checked)."""
    both = input_dim is not None and input_shape is not None
    if both and sample_shape(input_dim, None) != sample_shape(None, input_shape):
        raise ConfigurationError(f"input_dim={input_dim!r} and input_shape={input_shape!r} disagree; give one")
    value = input_dim if input_dim is not None else input_shape
    if value is None:
        return None
    if not hasattr(value, "__iter__"):
        value = (value,)
    try:
        shape = tuple(operator.index(d) for d in value if not isinstance(d, bool))
    except TypeError:
        shape = ()
    if not shape or len(shape) != len(tuple(value)) or min(shape) <= 0:
        what = "input_dim" if input_dim is not None else "input_shape"
        raise ConfigurationError(
            f"{what} must be a positive integer or a tuple of them (a sample's shape, without the batch axis), "
            f"got {value!r}"
        )
    return shape


class _DeclaresInput(type):
    """Lets every layer take Keras's ``input_shape=`` (a sample's shape) or ``input_dim=`` (features): on the first
    layer of a model they say what the model takes, as ``Sequential(..., input_shape=...)`` does."""

    def __call__(cls, *args, input_shape=None, **kwargs):
        input_dim = None if cls.takes_input_dim else kwargs.pop("input_dim", None)
        layer = super().__call__(*args, **kwargs)
        declared = sample_shape(input_dim, input_shape)
        layer.declared_input_shape = declared if declared is not None else layer.argument_input_shape
        return layer


class Layer(metaclass=_DeclaresInput):
    """Base class. Subclasses implement :meth:`forward` and :meth:`backward`, and :meth:`build` when they change
    the shape or have parameters.

    ``trainable=False`` freezes a layer as in Keras: the optimizer leaves its weights alone, its weight gradients
    are not computed, ``summary()`` counts them as non-trainable, and a frozen batch norm normalises with its running
    statistics. A change takes effect at the next ``compile()``.

    Any layer takes ``input_shape=`` or ``input_dim=`` (Keras's spelling); on a model's first layer they fix what the
    model takes.

    Called on symbolic tensors (``Dense(10)(x)``, see :func:`netcore.models.Input`), a layer builds from their
    shapes and records the call: that is how functional models are written. A layer called several times shares its
    weights between the calls.
    """

    #: Whether the layer may only appear before every layer with weights (it has no input gradient).
    input_only = False
    #: Whether the layer takes a list of inputs (merge layers): ``build`` gets a list of shapes, ``forward`` a list
    #: of arrays, ``backward`` a tuple of flags and returns a list of gradients.
    multiple_inputs = False
    #: The name a layer gets when none is given (else its class name in snake case: ``max_pooling2d``).
    default_name: str | None = None
    #: Whether ``input_dim`` is an argument of the layer itself (Embedding's vocabulary) rather than the declared
    #: input width.
    takes_input_dim = False
    #: An input shape the layer's own arguments imply (Embedding's ``input_length``), used when none is declared.
    argument_input_shape: tuple[int, ...] | None = None
    #: Whether the layer cuts its batch into blocks that the backend runs on several threads
    #: (:meth:`~backends.base.Backend.map_blocks`); a model with one runs its calls with the cores given to them.
    splits_batch = False

    def __init__(self, name: str | None = None, trainable: bool = True):
        #: Whether the name was made up (a model may number it to tell layers apart) or given by the user.
        self.auto_named = not name
        self.name = name or self.default_name or _snake_case(type(self).__name__)
        self.trainable = bool(trainable)
        #: The calls of this layer on symbolic tensors, in the order they were made.
        self.inbound_nodes: list = []
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.backend = None
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}
        self._buffers: dict = {}
        #: Token of the model whose flat buffers ``params`` and ``state`` view (layers can move between models).
        self.owner = None
        #: The input's mask over time steps, ``(batch, time)`` booleans or None, set by the model before forward.
        self.mask = None

    # ----------------------------------------------------------------- construction
    @property
    def n_in(self) -> int:
        """Size of the input's last axis (the features of a table, the channels of an image)."""
        return self.input_shape[-1]

    @property
    def n_out(self) -> int:
        return self.output_shape[-1]

    def build(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Fix the input shape (without the batch axis) and return the output shape."""
        self.input_shape = self.output_shape = tuple(input_shape)
        return self.output_shape

    def param_specs(self) -> list[ParamSpec]:
        return []

    def state_specs(self) -> list[StateSpec]:
        return []

    @property
    def has_weights(self) -> bool:
        return bool(self.param_specs())

    def bind(self, backend, params: dict, grads: dict, state: dict, owner=None) -> None:
        """Receive the views of the model's flat buffers; drop work buffers of a previous binding."""
        self.backend, self.params, self.grads, self.state = backend, params, grads, state
        self.owner = owner
        self._buffers = {}

    def twin(self) -> Layer:
        """A copy that runs another call of this layer in one model: the same settings, its own shapes, work
        buffers and cached values; the model binds it to this layer's weights and gives it gradients of its own,
        which it adds to this layer's after the backward pass."""
        twin = copy.copy(self)
        twin._buffers = {}
        return twin

    # ----------------------------------------------------------------- calls on symbolic tensors
    def __call__(self, inputs):
        from netcore.models.symbolic import call_layer

        return call_layer(self, inputs)

    @property
    def input(self):
        """The tensor(s) of this layer's first call (Keras's ``layer.input``)."""
        node = self._first_node("input")
        return node.inputs if node.many else node.inputs[0]

    @property
    def output(self):
        """The tensor this layer's first call gave (Keras's ``layer.output``)."""
        return self._first_node("output").outputs[0]

    def _first_node(self, what: str):
        if not self.inbound_nodes:
            raise NetcoreError(
                f"{self.name} has no {what} yet: it has not been called on a tensor (Input(...) or another layer's "
                "output) nor been part of a built model"
            )
        return self.inbound_nodes[0]

    def config(self) -> dict:
        """Constructor arguments that rebuild this layer (checkpoints, summaries)."""
        return {"name": self.name, "trainable": self.trainable}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k not in ("name", "trainable"))
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- running
    def buffer(self, key: str, shape: tuple[int, ...], dtype):
        """A work buffer of ``shape``, allocated once per key and shape (so once per batch size)."""
        slot = (key, tuple(shape))
        buf = self._buffers.get(slot)
        if buf is None:
            buf = self._buffers[slot] = self.backend.empty(tuple(shape), dtype)
        return buf

    def batch_shape(self, rows: int, shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """``(rows, *shape)``, the output shape by default."""
        return (rows, *(self.output_shape if shape is None else shape))

    def output_mask(self, mask):
        """The mask that goes with this layer's output: the input's when the layer keeps the time axis (same rank,
        same number of steps), else None."""
        keeps_time = (
            mask is not None
            and len(self.input_shape) == len(self.output_shape) >= 2
            and self.input_shape[0] == self.output_shape[0]
        )
        return mask if keeps_time else None

    def forward(self, x, training: bool):
        raise NotImplementedError

    def backward(self, dy, need_dx: bool):
        """Write parameter gradients into ``self.grads`` (unless frozen) and return ``dL/dx`` (None when not
        ``need_dx``)."""
        raise NotImplementedError


class InBlocks:
    """Mixed into a layer that runs its batch as blocks of images, each block on one of the backend's block threads
    (:meth:`~backends.base.Backend.map_blocks`). The layer says how its passes run for given blocks
    (:meth:`forward_blocks`, :meth:`backward_blocks`); its own ``forward`` and ``backward`` hand them to the threads,
    and the executor may instead run several such layers in a row in one hand-over per pass
    (:class:`netcore.models.block_chain.BlockChain`): each block goes through all of them on one thread, its values
    still in that core's cache, and the threads are woken once instead of once per layer."""

    splits_batch = True
    #: Whether :meth:`forward_blocks` and :meth:`backward_blocks` describe the layer's passes (a subclass that runs
    #: its own way says False).
    in_blocks = True

    def block_count(self, n: int, dtype) -> int:
        """Blocks the layer wants a batch of ``n`` cut into (the executor gives a chain the most any member wants)."""
        return self.backend.block_threads

    def forward_blocks(self, x, training, blocks: list[slice]):
        """``(y, run)``: the output buffer, which ``run(lane, index)`` fills for the images of ``blocks[index]``."""
        raise NotImplementedError

    def backward_blocks(self, dy, need_dx, blocks: list[slice]):
        """``(dx, run, finish)``: ``run(lane, index)`` writes block ``index``'s share of the weight gradients and its
        rows of ``dx`` (None where not ``need_dx``); ``finish()`` runs once every block is done. ``run`` may be None
        (nothing to do)."""
        raise NotImplementedError

    def forward(self, x, training):
        blocks = batch_blocks(x.shape[0], self.block_count(x.shape[0], x.dtype))
        y, run = self.forward_blocks(x, training, blocks)
        self.backend.map_blocks(run, len(blocks))
        return y

    def backward(self, dy, need_dx):
        blocks = batch_blocks(dy.shape[0], self.block_count(dy.shape[0], dy.dtype))
        dx, run, finish = self.backward_blocks(dy, need_dx, blocks)
        if run is not None:
            self.backend.map_blocks(run, len(blocks))
        finish()
        return dx


def batch_blocks(n: int, count: int) -> list[slice]:
    """``n`` rows of a batch (images, sequences) as ``min(count, n)`` blocks whose sizes differ by one at most."""
    count = max(1, min(count, n))
    bounds = [i * n // count for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


def sum_in_order(total, parts) -> None:
    """``total = parts[0] + parts[1] + ...``, left to right: block gradients summed in block order, so a result does
    not depend on which thread finished first."""
    total[...] = parts[0]
    for part in parts[1:]:
        total += part


def rows(x, width: int):
    """``x`` as a matrix of ``width`` columns (a view; ``x`` itself when it is one already, to spare the object)."""
    return x if x.ndim == 2 and x.shape[1] == width else x.reshape(-1, width)


def shaped(x, shape: tuple[int, ...]):
    """``x`` viewed with ``shape`` (``x`` itself when it has it already)."""
    return x if x.shape == shape else x.reshape(shape)


def _snake_case(name: str) -> str:
    """``MaxPooling2D`` -> ``max_pooling2d``, ``Dense`` -> ``dense`` (Keras's default layer names)."""
    out = []
    for i, char in enumerate(name):
        if char.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(char.lower())
    return "".join(out)


def flat_size(shape) -> int:
    return math.prod(shape)
