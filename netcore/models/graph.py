"""The topology of a model: the calls between its inputs and outputs, checked and put in order once, at
construction, then flattened into the list of layer calls the executor replays.

A graph's own operations are layers and nested models (``model.layers``, one entry per object, with the
``InputLayer`` of each input). Flattening expands every nested model into its own calls, so the executor sees only
layers and numbered value slots: the model's inputs first, then one slot per call's output.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.errors import ConfigurationError
from netcore.models.symbolic import InputLayer, Node, SymbolicTensor


def is_model(operation) -> bool:
    return hasattr(operation, "graph_of_calls")


@dataclass
class Call:
    """One layer call as the executor runs it: the slots it reads and the slot it writes."""

    layer: object
    inputs: list[int]
    output: int
    many: bool
    input_shapes: list[tuple[int, ...]]
    output_shape: tuple[int, ...]


class Graph:
    """The calls from ``inputs`` to ``outputs`` (symbolic tensors), in the order they were made.

    Raises ConfigurationError, naming what is wrong, for an output that depends on an ``Input`` not given, an
    input that no output uses, an input that is not an ``Input``, or two operations with one name.
    """

    def __init__(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor], owner: str):
        self.inputs, self.outputs, self.owner = list(inputs), list(outputs), owner
        self._check_inputs()
        self.nodes = self._collect()
        self.layers = self._keras_order()
        self._number_names()

    # ----------------------------------------------------------------- checks
    def _check_inputs(self) -> None:
        for k, tensor in enumerate(self.inputs):
            if not isinstance(tensor, SymbolicTensor):
                raise ConfigurationError(f"{self.owner}: input {k} is a {type(tensor).__name__}, not a tensor")
            if not isinstance(tensor.node.operation, InputLayer):
                raise ConfigurationError(
                    f"{self.owner}: input {k} comes from layer {tensor.name}; a model's inputs are tensors made "
                    "by Input()"
                )
            if any(tensor is other for other in self.inputs[:k]):
                raise ConfigurationError(f"{self.owner}: the input {tensor.name!r} is given twice")
        for k, tensor in enumerate(self.outputs):
            if not isinstance(tensor, SymbolicTensor):
                raise ConfigurationError(f"{self.owner}: output {k} is a {type(tensor).__name__}, not a tensor")

    def _collect(self) -> list[Node]:
        """Every node between the inputs and the outputs, in the order of their making."""
        seen: dict[int, Node] = {}
        used_inputs = set()
        for output in self.outputs:
            stack = [output]
            while stack:
                tensor = stack.pop()
                node = tensor.node
                if id(node) in seen:
                    continue
                seen[id(node)] = node
                if isinstance(node.operation, InputLayer):
                    if not any(tensor is given for given in self.inputs):
                        raise ConfigurationError(
                            f"{self.owner}: output {output.name!r} depends on the Input {tensor.name!r}, which is not "
                            f"among the model's inputs ({', '.join(t.name for t in self.inputs) or 'none'})"
                        )
                    used_inputs.add(id(tensor))
                stack.extend(node.inputs)
        unused = [t.name for t in self.inputs if id(t) not in used_inputs]
        if unused:
            raise ConfigurationError(f"{self.owner}: no output depends on the input(s) {', '.join(map(repr, unused))}")
        return sorted(seen.values(), key=lambda node: node.number)

    def _keras_order(self) -> list:
        """Each operation once, in the order Keras lists a functional model's layers (so ``model.layers`` and
        ``get_weights()`` match Keras's): by depth from the inputs, ties in the order a depth-first walk from the
        outputs first meets them (Keras's ``map_graph``)."""
        finished, walked, first_seen = set(), [], {}

        def visit(tensor) -> None:
            node = tensor.node
            if id(node) in finished:
                return
            first_seen.setdefault(id(node.operation), len(first_seen))
            for parent in node.inputs:
                visit(parent)
            finished.add(id(node))
            walked.append(node)

        for output in self.outputs:
            visit(output)
        node_depth: dict[int, int] = {}
        operation_depth: dict[int, int] = {}
        for node in reversed(walked):
            depth = max(node_depth.setdefault(id(node), 0), operation_depth.get(id(node.operation), 0))
            operation_depth[id(node.operation)] = node_depth[id(node)] = depth
            for parent in node.inputs:
                node_depth[id(parent.node)] = max(depth + 1, node_depth.get(id(parent.node), 0))
        operations = {id(node.operation): node.operation for node in walked}
        ranked = sorted(operations, key=lambda key: (-operation_depth[key], first_seen[key]))
        return [operations[key] for key in ranked]

    def _number_names(self) -> None:
        """Number made-up names that repeat (dense, dense_1, ...); two given names that repeat are an error."""
        taken: dict[str, object] = {}
        for operation in self.layers:
            if operation.name in taken and getattr(operation, "auto_named", False):
                base, k = operation.name, 1
                while f"{base}_{k}" in taken:
                    k += 1
                operation.name = f"{base}_{k}"
            if operation.name in taken:
                raise ConfigurationError(
                    f"{self.owner}: two layers are named {operation.name!r} ({type(taken[operation.name]).__name__} "
                    f"and {type(operation).__name__}); give each layer its own name"
                )
            taken[operation.name] = operation

    # ----------------------------------------------------------------- views
    def calls_of(self, operation) -> list[Node]:
        return [node for node in self.nodes if node.operation is operation]

    def node_index(self, node: Node) -> int:
        """Which call of its operation ``node`` is, in this graph."""
        return next(k for k, other in enumerate(self.calls_of(node.operation)) if other is node)

    def flatten(self, input_slots: list[int], calls: list[Call], count: list[int]) -> list[int]:
        """Append this graph's layer calls to ``calls``, nested models expanded, its inputs read from
        ``input_slots``; ``count`` holds the next free slot. Returns the slots of the outputs."""
        slot = {id(t): s for t, s in zip(self.inputs, input_slots, strict=True)}
        for node in self.nodes:
            operation = node.operation
            if isinstance(operation, InputLayer):
                continue
            inputs = [slot[id(t)] for t in node.inputs]
            if is_model(operation):
                outputs = operation.graph_of_calls().flatten(inputs, calls, count)
            else:
                outputs = [count[0]]
                count[0] += 1
                shapes = [t.sample_shape for t in node.inputs]
                calls.append(Call(operation, inputs, outputs[0], node.many, shapes, node.outputs[0].sample_shape))
            for tensor, s in zip(node.outputs, outputs, strict=True):
                slot[id(tensor)] = s
        return [slot[id(t)] for t in self.outputs]

    def leaf_calls(self) -> tuple[list[Call], list[int]]:
        """Every layer call in order (slots ``0 .. len(inputs) - 1`` are the inputs) and the outputs' slots."""
        calls: list[Call] = []
        count = [len(self.inputs)]
        outputs = self.flatten(list(range(len(self.inputs))), calls, count)
        return calls, outputs

    # ----------------------------------------------------------------- configuration
    def config(self) -> dict:
        """The topology as JSON: each operation once (its class and configuration), then every call in order, each
        naming its input tensors as ``[operation name, call index, output index]``."""
        from netcore.models.serialization import operation_config

        def ref(tensor: SymbolicTensor) -> list:
            return [tensor.node.operation.name, self.node_index(tensor.node), tensor.index]

        return {
            "layers": [operation_config(operation) for operation in self.layers],
            "calls": [
                {"layer": node.operation.name, "inputs": [ref(t) for t in node.inputs], "many": node.many}
                for node in self.nodes
                if not isinstance(node.operation, InputLayer)
            ],
            "inputs": [ref(t) for t in self.inputs],
            "outputs": [ref(t) for t in self.outputs],
        }
