"""Symbolic tensors and the calls that connect them (Keras's functional API).

``Input(shape)`` gives a :class:`SymbolicTensor`: a shape and a dtype, no values. Calling a layer (or a model) on
symbolic tensors builds the layer from their shapes and records a :class:`Node` (which operation, on which tensors,
giving which tensors); a model is then the graph between some inputs and some outputs. Nothing here computes: the
graph is replayed on arrays by :mod:`netcore.models.executor`.
"""

from __future__ import annotations

import itertools

from netcore.errors import ConfigurationError, ShapeError
from netcore.layers.base import Layer, sample_shape

#: Nodes are numbered as they are made: a node only consumes tensors that exist already, so this order is
#: topological, and it is the order in which the user wrote the calls.
_node_numbers = itertools.count()


class SymbolicTensor:
    """A placeholder for a batch of arrays: ``shape`` is ``(None, *sample_shape)`` (``None`` for the batch)."""

    def __init__(self, sample_shape: tuple[int, ...], dtype=None, node: Node | None = None, index: int = 0):
        self.sample_shape = tuple(sample_shape)
        self.dtype = dtype
        #: The call that produced this tensor, and which of its outputs it is.
        self.node, self.index = node, index

    @property
    def shape(self) -> tuple:
        return (None, *self.sample_shape)

    @property
    def name(self) -> str:
        return self.node.operation.name if self.node is not None else "tensor"

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} from {self.name}>"


class Node:
    """One call of ``operation`` (a layer or a model) on ``inputs``, giving ``outputs``.

    ``many`` says whether the call passed a list (merge layers, models with several inputs) or one tensor.
    """

    def __init__(self, operation, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor], many: bool):
        self.number = next(_node_numbers)
        self.operation, self.inputs, self.outputs, self.many = operation, list(inputs), list(outputs), many
        for index, tensor in enumerate(self.outputs):
            tensor.node, tensor.index = self, index
        operation.inbound_nodes.append(self)

    def forget(self) -> None:
        """Remove this call from its operation (a Sequential model traced again drops its previous graph)."""
        nodes = self.operation.inbound_nodes
        if any(node is self for node in nodes):
            nodes.remove(self)

    def __repr__(self) -> str:
        return f"<Node {self.operation.name} #{self.number}>"


class InputLayer(Layer):
    """Where a model's data enters: no weights, no computation; its one call has no inputs."""

    def __init__(self, shape, dtype=None, name: str | None = None):
        super().__init__(name)
        self.input_shape = self.output_shape = sample_shape(None, shape)
        self.dtype = None if dtype is None else str(dtype)
        Node(self, [], [SymbolicTensor(self.output_shape, self.dtype)], many=False)

    def config(self):
        return {"shape": list(self.output_shape), "dtype": self.dtype, "name": self.name}

    def build(self, input_shape):
        return self.output_shape


def Input(shape, dtype=None, name: str | None = None) -> SymbolicTensor:  # noqa: N802 (Keras's spelling)
    """A model input: ``Input(shape=(32, 32, 3), name="image")`` (a sample's shape, without the batch axis)."""
    try:
        layer = InputLayer(shape, dtype, name)
    except ConfigurationError as exc:
        raise ConfigurationError(f"Input: {exc}") from None
    return layer.inbound_nodes[0].outputs[0]


def is_symbolic(value) -> bool:
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, SymbolicTensor) for v in value)


def tensors_of(operation, inputs, many: bool) -> list[SymbolicTensor]:
    """The tensors of a call as a list: one tensor, or a list of them where the operation takes several."""
    if isinstance(inputs, SymbolicTensor):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)) or not all(isinstance(t, SymbolicTensor) for t in inputs):
        raise ConfigurationError(
            f"{operation.name} was called on {type(inputs).__name__}; call layers on the tensors that Input() and "
            "other layers return, and train or predict with the model"
        )
    if not many and len(inputs) != 1:
        raise ConfigurationError(f"{operation.name} ({type(operation).__name__}) takes one tensor, got {len(inputs)}")
    return list(inputs)


def call_layer(layer: Layer, inputs) -> SymbolicTensor:
    """``layer(inputs)`` on symbolic tensors: build the layer from their shapes, record the call, return its output."""
    many = layer.multiple_inputs
    tensors = tensors_of(layer, inputs, many)
    shapes = [t.sample_shape for t in tensors]
    output_shape = layer.build(shapes if many else shapes[0])
    node = Node(layer, tensors, [SymbolicTensor(output_shape)], many)
    return node.outputs[0]


def check_input_shapes(owner, expected: list[tuple[int, ...]], tensors: list[SymbolicTensor]) -> None:
    """A model called on tensors must get one of the shape of each of its inputs."""
    if len(tensors) != len(expected):
        raise ShapeError(f"{owner.name} takes {len(expected)} input(s), got {len(tensors)}")
    for shape, tensor in zip(expected, tensors, strict=True):
        if tuple(shape) != tensor.sample_shape:
            raise ShapeError(
                f"{owner.name} takes inputs of shapes {[(None, *s) for s in expected]}, got "
                f"{[t.shape for t in tensors]}"
            )
