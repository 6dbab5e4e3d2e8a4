"""``Model``: what a network is. A graph of layer calls between inputs and outputs (see
:mod:`netcore.models.graph`), its flat parameter buffers on one device, and the seeded generator. How it is trained
(compile, fit, evaluate, predict) is mixed in from :class:`netcore.trainers.Trainer`; saving and export live in
:mod:`netcore.saving` and :mod:`netcore.onnx_export`.
"""

from __future__ import annotations

from backends import get_backend
from netcore.errors import ConfigurationError, DTypeError, NetcoreError, ShapeError
from netcore.models import summary as summary_mod
from netcore.models.executor import Executor
from netcore.models.files import Files
from netcore.models.graph import Graph, is_model
from netcore.models.parameters import FlatBuffers
from netcore.models.symbolic import InputLayer, Node, SymbolicTensor, check_input_shapes, is_symbolic, tensors_of
from netcore.trainers import Trainer


def _structure(value, what: str) -> tuple[list, list[str] | None]:
    """A tensor, a list of them or a dict of them, as a list and (for a dict) its keys."""
    if isinstance(value, dict):
        return list(value.values()), [str(key) for key in value]
    if isinstance(value, (list, tuple)):
        return list(value), None
    if isinstance(value, SymbolicTensor):
        return [value], None
    raise ConfigurationError(f"Model {what} must be a tensor, a list or a dict of tensors, got {type(value).__name__}")


class Model(Trainer, Files):
    """A network of layers: ``Model(inputs=..., outputs=...)`` with tensors from :func:`netcore.layers.Input` and
    layer calls (one tensor, a list or a dict each), plus ``device``, ``dtype`` (``"float32"`` or ``"float64"``),
    ``seed`` and ``auto_transfer`` as for :class:`netcore.Sequential`.

    ``model.inputs``/``outputs`` (``input``/``output`` for one), ``model.layers`` (each layer or nested model once,
    in the order they were called, the ``InputLayer`` of each input included) and ``get_layer(name)`` show the
    topology. A model called on tensors is a layer of another model, its weights shared; ``trainable = False`` on it
    freezes every layer inside. Layers that already carry weights (from a trained model) keep them.
    """

    default_name = "model"

    def __init__(
        self,
        inputs,
        outputs,
        name: str | None = None,
        device=None,
        dtype: str = "float32",
        seed: int | None = None,
        auto_transfer: bool = False,
    ):
        self._init_model(name, device, dtype, seed, auto_transfer)
        inputs, _ = _structure(inputs, "inputs")
        outputs, keys = _structure(outputs, "outputs")
        self._output_keys = keys
        self._set_graph(Graph(inputs, outputs, self.name))

    def _init_model(self, name, device, dtype, seed, auto_transfer) -> None:
        """What every model holds besides its graph: the device, dtype, generator and training settings."""
        self.auto_named = not name
        self.name = name or self.default_name
        self.backend = get_backend(device)
        self.dtype_name = str(dtype)
        self.dtype = self.backend.float_dtype(self.dtype_name)
        self.seed = seed
        self.rng = self.backend.rng(seed)
        #: Calls of this model on symbolic tensors (as a layer of other models).
        self.inbound_nodes: list[Node] = []
        self.graph: Graph | None = None
        #: Whether the model has its graph (a plain attribute: every public call asks, a property costs a call).
        self.built = False
        self.buffers: FlatBuffers | None = None
        #: The sample shape of a built model's only input (None before building and for several inputs): what an
        #: array must match to take predict's short path.
        self._served_shape: tuple | None = None
        self.training = True
        #: Identifies this model's binding of its layers (layers can move between models).
        self._token = object()
        #: Copy arrays of another device in (True) or refuse them with a DeviceError (False, the default).
        self.auto_transfer = bool(auto_transfer)
        #: JSON-able notes saved with the model (the command line keeps the data set and its scaling here).
        self.metadata: dict = {}
        self._output_keys: list[str] | None = None
        self._init_training()

    def _set_graph(self, graph: Graph) -> None:
        """Adopt ``graph``: put its calls in order for the executor, then lay out and initialise the buffers."""
        calls, output_slots = graph.leaf_calls()
        leaves = self._leaves_of(graph)
        for call in self._first_calls(calls):
            shapes = call.input_shapes
            call.layer.build(shapes if call.many else shapes[0])
        self._check_calls(calls)
        for layer in leaves:  # layers this build changes must be re-checked by the model they come from
            if layer.owner is not self._token:
                layer.owner = None
        buffers = FlatBuffers(self.backend, self.dtype, leaves, self._token)
        buffers.check_carried()
        self.graph, self.buffers, self.built = graph, buffers, True
        self._executor = Executor(calls, len(graph.inputs), output_slots)
        carried = buffers.allocate(tuple(layer.trainable for layer in leaves))
        buffers.initialize(self.rng, carried)
        buffers.carry(carried)
        self._input_specs_built = self._describe_inputs()
        shapes = self._input_specs_built[1]
        self._served_shape = tuple(shapes[0]) if len(shapes) == 1 else None
        self._after_binding()

    @staticmethod
    def _leaves_of(graph: Graph) -> list:
        """Every layer with a call in ``graph``, nested models' included, each once, in the order Keras lists
        weights (layer by layer, a nested model's in its own order)."""
        leaves: list = []
        for operation in graph.layers:
            inner = operation._leaves_of(operation.graph) if is_model(operation) else [operation]
            for layer in inner:
                if not isinstance(layer, InputLayer) and not any(layer is known for known in leaves):
                    leaves.append(layer)
        return leaves

    @staticmethod
    def _first_calls(calls) -> list:
        seen, first = set(), []
        for call in calls:
            if id(call.layer) not in seen:
                seen.add(id(call.layer))
                first.append(call)
        return first

    def _check_calls(self, calls) -> None:
        """Input-only layers come before every weighted layer; a layer called again gets weights of one shape."""
        weighted = set()
        first_weighted = None
        for call in calls:
            layer = call.layer
            below = [weighted_slot for weighted_slot in call.inputs if weighted_slot in weighted]
            if layer.input_only and below:
                raise ConfigurationError(
                    f"{layer.name} ({type(layer).__name__}) transforms the input and has no gradient: put it before "
                    f"every layer with weights (it comes after {first_weighted})"
                )
            if below or layer.has_weights:
                weighted.add(call.output)
                first_weighted = first_weighted or layer.name
        first = {id(call.layer): call for call in self._first_calls(calls)}
        for call in calls:
            if first[id(call.layer)] is call or not call.layer.has_weights:
                continue
            twin = call.layer.twin()
            twin.build(call.input_shapes if call.many else call.input_shapes[0])
            if [s.shape for s in twin.param_specs()] != [s.shape for s in call.layer.param_specs()]:
                shapes = [(None, *s) for s in (first[id(call.layer)].input_shapes + call.input_shapes)]
                raise ShapeError(
                    f"{call.layer.name} is called on inputs of shapes {shapes}; its weights fit only one of them"
                )

    def _after_binding(self) -> None:
        """After the layers were bound to the buffers: hand them the generator and make the runners."""
        for layer in self.buffers.layers:
            if hasattr(layer, "rng"):
                layer.rng = self.rng
        trained = {id(layer) for layer, flag in zip(self.buffers.layers, self.buffers.layout, strict=True) if flag}
        self._executor.make_runners(self.backend, self.dtype, trained)
        self._batch_buffers = {}

    def _claim(self) -> None:
        """Take back layers another model has used since (they share weights with it): re-fix their shapes for
        this model and copy their current weights into this model's buffers."""
        if not self.built or self.buffers.owns_all():
            return
        for call in self._first_calls(self._executor.calls):
            call.layer.build(call.input_shapes if call.many else call.input_shapes[0])
        self.buffers.claim()
        self._after_binding()

    def _relayout(self, trainable: tuple[bool, ...]) -> None:
        self.buffers.carry(self.buffers.allocate(trainable))
        self._after_binding()

    @property
    def executor(self) -> Executor:
        """What runs the model's layer calls (its steps, in order)."""
        self._require_built()
        return self._executor

    def graph_of_calls(self) -> Graph:
        """The graph a model contributes when called as a layer of another model."""
        self._require_built()
        return self.graph

    # ----------------------------------------------------------------- topology
    @property
    def layers(self) -> list:
        return list(self.graph.layers) if self.graph is not None else []

    @property
    def inputs(self) -> list[SymbolicTensor]:
        self._require_built()
        return list(self.graph.inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        self._require_built()
        return list(self.graph.outputs)

    @property
    def input(self):
        """The input tensor (a list where the model has several)."""
        inputs = self.inputs
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self):
        """The output tensor (a list where the model has several)."""
        outputs = self.outputs
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def input_names(self) -> list[str]:
        return [tensor.name for tensor in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """How outputs are named in losses, targets and the history: the keys of a dict of outputs, else the
        layers that compute them (numbered where two outputs come from one layer)."""
        if self._output_keys is not None:
            return list(self._output_keys)
        names: list[str] = []
        for tensor in self.outputs:
            name, k = tensor.name, 1
            while name in names:
                name, k = f"{tensor.name}_{k}", k + 1
            names.append(name)
        return names

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Each input's sample shape (without the batch axis)."""
        return [tensor.sample_shape for tensor in self.inputs]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tensor.sample_shape for tensor in self.outputs]

    @property
    def input_shape(self):
        """A sample's shape (without the batch axis); a list of them for several inputs; None before building."""
        if not self.built:
            return None
        shapes = self.input_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = self.output_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_dim(self) -> int | None:
        """Values per sample of a one-input model (the features of a table; height x width x channels of an
        image)."""
        shape = self.input_shape
        return None if shape is None or isinstance(shape, list) else _prod(shape)

    @property
    def n_outputs(self) -> int:
        """Width of the output's last axis: the loss applies over it (Keras's rule), so a sequence output
        ``(time, k)`` is ``time`` rows of the loss per sample, and an image output one row per pixel."""
        return self.output_shapes[0][-1]

    def get_layer(self, name: str | None = None, index: int | None = None):
        """The layer (or nested model) called ``name``, or at position ``index`` of :attr:`layers`."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(layer.name for layer in self.layers)
        raise ConfigurationError(f"{self.name} has no layer named {name!r}; its layers are {names}")

    def leaf_layers(self) -> list:
        """Every layer that computes (nested models opened), each once, in weight order."""
        self._require_built()
        return list(self.buffers.layers)

    def leaf_names(self) -> dict[int, str]:
        """A name for every layer that computes, unique in this model: its own, or ``model/layer`` for a layer of
        a nested model (keyed by the layer's ``id``)."""
        names: dict[int, str] = {}
        for operation in self.layers:
            if is_model(operation):
                for key, inner in operation.leaf_names().items():
                    names.setdefault(key, f"{operation.name}/{inner}")
            elif not isinstance(operation, InputLayer):
                names.setdefault(id(operation), operation.name)
        return names

    @property
    def trainable(self) -> bool:
        return all(layer.trainable for layer in self.leaf_layers()) if self.built else True

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (False) or unfreeze every layer of the model, nested ones included (as in Keras); takes effect
        at the next ``compile()``."""
        for layer in self.leaf_layers():
            layer.trainable = bool(value)

    @property
    def device(self) -> str:
        return self.backend.name

    # ----------------------------------------------------------------- calling
    def __call__(self, inputs):
        """On symbolic tensors, a call of this model as a layer of another (its weights shared); on arrays, the
        forward pass in the current mode (:meth:`train` / :meth:`eval`), returning native arrays."""
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        return self.forward(inputs)

    def _call_symbolic(self, inputs):
        tensors = tensors_of(self, inputs, many=isinstance(inputs, (list, tuple)))
        self._build_for([t.sample_shape for t in tensors])
        check_input_shapes(self, self.input_shapes, tensors)
        outputs = [SymbolicTensor(shape) for shape in self.output_shapes]
        Node(self, tensors, outputs, many=isinstance(inputs, (list, tuple)))
        return outputs[0] if len(outputs) == 1 else outputs

    def _build_for(self, shapes) -> None:
        """Build on first use (only a Sequential model can be unbuilt)."""
        self._require_built()

    def train(self) -> Model:
        """Training mode for :meth:`__call__`: dropout and noise active, batch norm on batch statistics."""
        self.training = True
        return self

    def eval(self) -> Model:
        """Evaluation mode for :meth:`__call__`: dropout off, batch norm on running statistics."""
        self.training = False
        return self

    def to(self, device) -> Model:
        """Move parameters, running statistics and optimizer state to another device."""
        target = get_backend(device)
        if target is self.backend:
            return self
        source = self.backend
        self.backend = target
        self.dtype = target.float_dtype(self.dtype_name)
        if self.built:
            self.buffers.move(target)
            self._after_binding()
        if self.optimizer is not None and self.optimizer.backend is not None:
            old_state = {k: source.to_numpy(v) for k, v in self.optimizer.state.items()}
            self.optimizer.bind(target, self.buffers.trained_params)
            for key, value in old_state.items():
                self.optimizer.state[key][...] = target.asarray(value, self.dtype)
        return self

    # ----------------------------------------------------------------- weights
    @property
    def parameter_buffer(self):
        """Every parameter in one flat device array (trainable ones first); layers view into it."""
        self._require_built()
        return self.buffers.params

    @property
    def gradient_buffer(self):
        """The gradients of :attr:`parameter_buffer`, laid out alike."""
        self._require_built()
        return self.buffers.grads

    @property
    def state_buffer(self):
        """Every running statistic (batch norm's) in one flat device array."""
        self._require_built()
        return self.buffers.state

    def _weight_targets(self) -> list:
        targets = []
        for layer in self.buffers.layers:
            targets += [(layer, layer.params, s.name, s.shape) for s in layer.param_specs()]
            targets += [(layer, layer.state, s.name, s.shape) for s in layer.state_specs()]
        return targets

    def get_weights(self) -> list:
        """NumPy copies in Keras's order (layer by layer, nested models in theirs): Dense ``W (n_in, n_out)`` then
        ``b (n_out,)``; Conv2D ``W (kh, kw, in, filters)`` then ``b (filters,)``; BatchNorm ``gamma``, ``beta``,
        ``running_mean``, ``running_var``."""
        self._require_built()
        self._claim()
        return [self.backend.to_numpy(store[name]).copy() for _, store, name, _ in self._weight_targets()]

    def set_weights(self, weights) -> None:
        """Load arrays in :meth:`get_weights` order; every shape is checked before anything is written."""
        self._require_built()
        self._claim()
        targets = self._weight_targets()
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
            raise DTypeError(f"set_weights takes a list of arrays, got {type(weights).__name__}")
        weights = list(weights)
        if len(weights) != len(targets):
            raise ShapeError(f"set_weights needs {len(targets)} arrays, got {len(weights)}")
        converted = []
        for (layer, _, name, shape), w in zip(targets, weights, strict=True):
            where = f"{layer.name}.{name}"
            if getattr(getattr(w, "dtype", None), "kind", "f") in "OSUVMmc":
                raise DTypeError(f"{where} must hold real numbers, got dtype {w.dtype}")
            try:
                array = self.backend.asarray(w, self.dtype)
            except (TypeError, ValueError) as exc:
                raise DTypeError(f"{where} must be a numeric array: {exc}") from None
            if tuple(array.shape) != tuple(shape):
                raise ShapeError(f"{where} must have shape {tuple(shape)}, got {tuple(array.shape)}")
            if not self.backend.all_finite(array):
                raise ShapeError(f"{where} contains NaN or infinity")
            converted.append(array)
        for (_, store, name, _), array in zip(targets, converted, strict=True):
            store[name][...] = array

    def count_params(self) -> int:
        """Parameters (trainable and frozen; running statistics are not parameters)."""
        self._require_built()
        return int(self.buffers.params.shape[0])

    # ----------------------------------------------------------------- copies, files and reports
    def get_config(self) -> dict:
        """The architecture as JSON: this model's topology and every layer's settings (no weights)."""
        self._require_built()
        config = {"name": self.name, "graph": self.graph.config()}
        if self._output_keys is not None:
            config["output_keys"] = list(self._output_keys)
        return config

    def clone(self, dtype: str | None = None, device=None) -> Model:
        """A copy of this model's architecture and weights (optionally in another dtype or on another device),
        compiled with the same losses and a fresh optimizer of the same kind."""
        from netcore.models.serialization import model_from_config

        self._require_built()
        twin = model_from_config(
            type(self).__name__, self.get_config(), device or self.backend, dtype or self.dtype_name, self.seed
        )
        twin.set_weights(self.get_weights())
        self._compile_like(twin)
        return twin

    def summary(self, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (trainable and not, so the column adds up to the
        total, as in Keras; graphs add what each layer is connected to), with the device and dtype; printed and
        returned."""
        self._require_built()
        self._claim()
        result = summary_mod.table(self)
        if print_fn is not None:
            print_fn(result)
        return result

    def _require_built(self) -> None:
        if not self.built:
            raise NetcoreError("the model is not built yet: pass input_shape (or input_dim) or call fit() first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layers={len(self.layers)}, device={self.device!r})"


def _prod(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total
