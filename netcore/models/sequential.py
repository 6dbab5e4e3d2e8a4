"""``Sequential``: a model whose graph is a line, built when its input shape is known (Keras's Sequential)."""

from __future__ import annotations

from netcore import layers as layers_mod
from netcore.errors import ConfigurationError
from netcore.layers.base import sample_shape
from netcore.models.graph import Graph, is_model
from netcore.models.model import Model
from netcore.models.symbolic import Input


class Sequential(Model):
    """A stack of layers trained end to end.

    ``Sequential([Dense(64, "relu"), Dense(10, "softmax")], input_dim=64, device="numba", seed=0)``, or for images
    ``Sequential([Conv2D(16, 3, activation="relu"), ...], input_shape=(28, 28, 1))`` (a sample's shape, without the
    batch axis; images are channels-last). ``input_dim=n`` means ``input_shape=(n,)``; without either, the model is
    built on the first data it sees. The device is a name (``"numpy"``, ``"numba"``, ``"cupy"``, ``"cpu"``,
    ``"auto"``, ...) or None for the active device; ``dtype`` is ``"float32"`` (default) or ``"float64"``; ``seed``
    fixes weights, shuffles, dropout masks and augmentations.

    Layers that already carry weights (``base.layers[:-1]`` of a trained model) keep them: that is transfer
    learning. A layer object then belongs to both models and shares its weights between them, as in Keras. A model
    (a trained base) may be one of the layers.
    """

    default_name = "sequential"

    def __init__(
        self,
        layers=None,
        input_dim: int | None = None,
        device=None,
        dtype: str = "float32",
        seed: int | None = None,
        auto_transfer: bool = False,
        input_shape=None,
        name: str | None = None,
    ):
        self._init_model(name, device, dtype, seed, auto_transfer)
        self._stack: list = []
        for layer in list(layers or []):
            self._check_new_layer(layer)
            self._stack.append(layer)
        self._number_names()
        self._declared_shape = sample_shape(input_dim, input_shape)
        self._build_declared()

    @property
    def layers(self) -> list:
        """The layers in order (no InputLayer, as in Keras's Sequential)."""
        return list(self._stack)

    def _check_new_layer(self, layer) -> None:
        if not isinstance(layer, layers_mod.Layer) and not is_model(layer):
            raise ConfigurationError(
                f"Sequential takes netcore layers, not {type(layer).__name__} (a model may also be one of them)"
            )
        if any(layer is other for other in self._stack):
            raise ConfigurationError("a layer object appears twice in the model; create one object per layer")

    def _number_names(self) -> None:
        """Number repeated layer names (dense, dense_1, ...) so errors and reports can name one layer."""
        taken: set[str] = set()
        for layer in self._stack:
            base, k = layer.name, 1
            while layer.name in taken:
                layer.name, k = f"{base}_{k}", k + 1
            taken.add(layer.name)

    def add(self, layer) -> Sequential:
        """Append ``layer`` (Keras's ``model = Sequential(); model.add(Dense(64, input_dim=10)); ...``). The model
        is built when first needed (compile, summary, fit), so a seed draws the same weights as the list form. A
        model built already is rebuilt keeping its layers' weights, and recompiled if it was compiled; adding to a
        model that has trained is refused."""
        if self.epochs_trained or (self.optimizer is not None and self.optimizer.step_count):
            raise ConfigurationError("add() builds a model before training; this one has trained already")
        self._check_new_layer(layer)
        self._stack.append(layer)
        self._number_names()
        if self.built:
            self.build(self.input_shape)
            if self.optimizer is not None:
                self._recompile()
        return self

    def _build_declared(self) -> None:
        """Build from the declared input shape (the model's, else its first layer's), if any and not built yet."""
        if self.built or not self._stack:
            return
        first = getattr(self._stack[0], "declared_input_shape", None)
        if self._declared_shape and first and self._declared_shape != first:
            raise ConfigurationError(
                f"the model's input shape {self._declared_shape} and its first layer's {first} disagree; give one"
            )
        shape = self._declared_shape or first
        if shape is not None:
            self.build(shape)

    def _build_for(self, shapes) -> None:
        if not self.built and len(shapes) == 1:
            self.build(shapes[0])
        self._require_built()

    def infer_output_shape(self, input_shape) -> tuple[int, ...]:
        """The output shape for samples of ``input_shape``, without building (fixes the layers' shapes only)."""
        shape = tuple(input_shape)
        weighted = None
        for layer in self._stack:
            if getattr(layer, "input_only", False) and weighted is not None:
                raise ConfigurationError(
                    f"{layer.name} ({type(layer).__name__}) transforms the input and has no gradient: put it before "
                    f"every layer with weights (it comes after {weighted})"
                )
            if is_model(layer):
                layer._build_for([shape])
                if layer.input_shapes != [shape]:
                    raise ConfigurationError(f"{layer.name} takes samples of shape {layer.input_shape}, not {shape}")
                shape = layer.output_shapes[0]
                weighted = weighted or layer.name
                continue
            shape = layer.build(shape)
            if layer.has_weights and weighted is None:
                weighted = layer.name
        return shape

    def build(self, input_shape) -> None:
        """Fix the input shape (an int means a table of that many features), allocate the flat buffers, and draw
        the initial weights of every layer that does not carry weights already."""
        if not self._stack:
            raise ConfigurationError("the model has no layers: pass them to Sequential or add() them first")
        shape = sample_shape(input_shape, None)
        self.infer_output_shape(shape)
        previous = self.graph
        x = inputs = Input(shape, name=f"{self.name}_input")
        for layer in self._stack:
            x = layer(x)
        graph = Graph([inputs], [x], self.name)
        try:
            self._set_graph(graph)
        except BaseException:
            _forget(graph)
            raise
        if previous is not None:  # the layers forget the calls of the graph this one replaces
            _forget(previous)

    @property
    def trainable(self) -> bool:
        return all(getattr(layer, "trainable", True) for layer in self._stack)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self._stack:
            layer.trainable = bool(value)

    def get_config(self) -> dict:
        from netcore.models.serialization import operation_config

        self._require_built()
        return {
            "name": self.name,
            "layers": [operation_config(layer) for layer in self._stack],
            "input_shape": list(self.input_shape),
        }

    def _require_built(self) -> None:
        self._build_declared()
        super()._require_built()

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self._stack)
        return f"Sequential([{inner}], device={self.device!r}, dtype={self.dtype_name!r})"


def _forget(graph: Graph) -> None:
    for node in graph.nodes:
        node.forget()
