"""Whole Keras models: ``.keras`` archives (a ZIP of ``config.json``, ``metadata.json`` and ``model.weights.h5``)
read and written, and Keras's older full-model ``.h5`` files read. A configuration is turned into a netcore model
layer by layer (:mod:`netcore.keras_files.layers`) and call by call; nothing in it is executed."""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile

from netcore.atomic import replacing
from netcore.errors import CheckpointError, ConfigurationError, NetcoreError
from netcore.keras_files.layers import layer_from_keras, layer_to_keras
from netcore.keras_files.weights import _assign, _read_keras3, _read_legacy, h5py_module, keras_layers, write_weights
from netcore.models.graph import is_model
from netcore.models.symbolic import InputLayer

#: The largest config.json read (a guard against a hostile archive).
MAX_CONFIG_BYTES = 64 * 2**20


# ----------------------------------------------------------------------------------------------- configurations in
def _shape_of(config: dict):
    for key in ("batch_shape", "batch_input_shape"):
        if config.get(key):
            return tuple(config[key][1:])
    return tuple(config["shape"]) if config.get("shape") else None


def _inbound(node) -> tuple[list, bool]:
    """The ``[name, call, output]`` references of one recorded call, and whether it passed a list: Keras 3 writes
    ``{"args": [tensor or list of tensors], "kwargs": {}}``, Keras 2 a list of ``[name, call, output, kwargs]``."""
    if isinstance(node, dict):
        argument = node["args"][0]
        many = isinstance(argument, list)
        tensors = argument if many else [argument]
        return [t["config"]["keras_history"] for t in tensors], many
    return [entry[:3] for entry in node], len(node) > 1


def _references(value) -> list:
    """input_layers / output_layers: one ``[name, call, output]`` or a list of them."""
    return [value] if value and isinstance(value[0], str) else list(value)


def model_from_keras(kind: str, config: dict, device=None, dtype: str = "float32", module=None):
    """A netcore model from a Keras model's class name and configuration."""
    from netcore.models import Input, Model, Sequential

    name = config.get("name")
    if kind == "Sequential":
        entries = config["layers"]
        shape = config.get("build_input_shape")
        shape = tuple(shape[1:]) if shape else None
        stack = []
        for entry in entries:
            if entry["class_name"] == "InputLayer":
                shape = _shape_of(entry["config"])
                continue
            shape = shape or _shape_of(entry["config"])
            stack.append(_operation(entry, device, dtype))
        if shape is None:
            raise CheckpointError(f"the Sequential model {name!r} does not say its input shape")
        return Sequential(stack, input_shape=shape, device=device, dtype=dtype, name=name)
    if kind not in ("Functional", "Model"):
        raise ConfigurationError(f"{kind} models are not Keras's own (Sequential, Functional); netcore reads those")
    operations, produced, pending = {}, {}, []
    for entry in config["layers"]:
        layer_name = entry.get("name") or entry["config"]["name"]
        if entry["class_name"] == "InputLayer":
            produced[layer_name] = [[Input(_shape_of(entry["config"]), name=layer_name)]]
            continue
        operations[layer_name] = _operation(entry, device, dtype)
        pending += [(layer_name, node) for node in entry["inbound_nodes"]]
    while pending:  # calls in order; a shared layer's later call may wait for layers listed after it
        waiting = []
        for layer_name, node in pending:
            references, many = _inbound(node)
            if not all(ref[0] in produced and ref[1] < len(produced[ref[0]]) for ref in references):
                waiting.append((layer_name, node))
                continue
            tensors = [produced[ref[0]][ref[1]][ref[2]] for ref in references]
            out = operations[layer_name](tensors if many else tensors[0])
            produced.setdefault(layer_name, []).append(out if isinstance(out, list) else [out])
        if len(waiting) == len(pending):
            raise CheckpointError(f"the calls of {', '.join(sorted({n for n, _ in waiting}))} never get their inputs")
        pending = waiting

    def tensor(ref):
        return produced[ref[0]][ref[1]][ref[2]]

    inputs = [tensor(ref) for ref in _references(config["input_layers"])]
    outputs = [tensor(ref) for ref in _references(config["output_layers"])]
    return Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name, device=device, dtype=dtype)


def _operation(entry: dict, device, dtype):
    kind, config = entry["class_name"], entry["config"]
    if kind in ("Sequential", "Functional", "Model"):
        model = model_from_keras(kind, config, device, dtype, entry.get("module"))
        model.trainable = bool(config.get("trainable", True))
        return model
    return layer_from_keras(kind, config, entry.get("module"))


# ----------------------------------------------------------------------------------------------- reading files
def load(path, device=None):
    """A netcore model from a ``.keras`` archive or a full-model Keras ``.h5`` file, weights included."""
    path = os.fspath(path)
    if path.endswith(".keras"):
        return _load_archive(path, device)
    return _load_h5_model(path, device)


def _load_archive(path: str, device):
    h5py = h5py_module()
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise CheckpointError(f"{path}: config.json of {info.file_size} bytes is larger than netcore reads")
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable .keras archive ({type(exc).__name__}: {exc})") from None
    model = _build(config, path, device)
    try:
        with h5py.File(io.BytesIO(weights), "r") as handle:
            pairs = _read_keras3(model, handle, path)
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: its model.weights.h5 is not readable ({type(exc).__name__}: {exc})") from None
    _assign(model, pairs, path)
    compile_like_keras(model, config.get("compile_config"))
    return model


#: Keras's optimizer settings netcore's optimizers take under the same names.
_OPTIMIZER_SETTINGS = ("learning_rate", "beta_1", "beta_2", "epsilon", "momentum", "nesterov", "rho", "amsgrad")


def compile_like_keras(model, compile_config) -> None:
    """Compile ``model`` as the file's ``compile_config`` says where netcore has its loss, optimizer and metrics
    (Keras's names); otherwise leave it uncompiled (``compile`` it before training)."""
    from netcore import optimizers

    if not compile_config or not isinstance(compile_config.get("loss"), (str, list, dict)):
        return
    optimizer = compile_config.get("optimizer") or {}
    kind = str(optimizer.get("class_name", "adam")).lower()
    settings = {k: v for k, v in (optimizer.get("config") or {}).items() if k in _OPTIMIZER_SETTINGS and v is not None}
    metrics = compile_config.get("metrics")
    try:  # compile changes nothing when it refuses (an optimizer, loss or metric netcore has not)
        model.compile(
            optimizers.get(kind, **settings),
            compile_config["loss"],
            metrics if isinstance(metrics, (list, dict)) else None,
            loss_weights=compile_config.get("loss_weights"),
        )
    except (ConfigurationError, TypeError):
        return


def _load_h5_model(path: str, device):
    h5py = h5py_module()
    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                raise CheckpointError(
                    f"{path}: holds weights only (no model_config); build the model and call load_weights"
                )
            raw = handle.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            model = _build(config, path, device)
            root = handle["model_weights"]
            pairs = _read_legacy(model, root, path) if "layer_names" in root.attrs else _read_keras3(model, root, path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable Keras .h5 model ({type(exc).__name__}: {exc})") from None
    _assign(model, pairs, path)
    return model


def _build(config: dict, path: str, device):
    try:
        return model_from_keras(config["class_name"], config["config"], device, "float32", config.get("module"))
    except ConfigurationError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, NetcoreError) as exc:
        raise CheckpointError(
            f"{path}: the model's configuration is not readable ({type(exc).__name__}: {exc})"
        ) from None


# ----------------------------------------------------------------------------------------------- writing
def _tensor(tensor, graph) -> dict:
    reference = [tensor.node.operation.name, graph.node_index(tensor.node), tensor.index]
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, *tensor.sample_shape], "dtype": "float32",
                                                          "keras_history": reference}}  # fmt: skip


def model_to_keras(model) -> dict:
    """Keras 3's configuration of a netcore model (``{"module", "class_name", "config"}``)."""
    if type(model).__name__ == "Sequential":
        layers = [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": [None, *model.input_shape], "dtype": "float32", "name": model.inputs[0].name}}
        ]  # fmt: skip
        layers += [_entry(layer, None, None) for layer in model.layers]
        config = {"name": model.name, "trainable": True, "layers": layers,
                  "build_input_shape": [None, *model.input_shape]}  # fmt: skip
        return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None}
    graph = model.graph
    layers = [_entry(operation, graph, model) for operation in keras_layers(model)]
    references = [
        [[t.node.operation.name, graph.node_index(t.node), t.index] for t in tensors]
        for tensors in (graph.inputs, graph.outputs)
    ]
    config = {"name": model.name, "trainable": True, "layers": layers,
              "input_layers": references[0], "output_layers": references[1]}  # fmt: skip
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
            "registered_name": None}  # fmt: skip


def _entry(operation, graph, owner) -> dict:
    if isinstance(operation, InputLayer):
        config = {"batch_shape": [None, *operation.output_shape], "dtype": "float32", "name": operation.name}
        return {"module": "keras.layers", "class_name": "InputLayer", "config": config, "registered_name": None,
                "name": operation.name, "inbound_nodes": []}  # fmt: skip
    if is_model(operation):
        entry = model_to_keras(operation)
    else:
        kind, config = layer_to_keras(operation)
        entry = {"module": "keras.layers", "class_name": kind, "config": config, "registered_name": None}
        entry["build_config"] = {"input_shape": _input_shape(operation)}
    if graph is not None:
        nodes = []
        for node in graph.calls_of(operation):
            tensors = [_tensor(t, graph) for t in node.inputs]
            nodes.append({"args": [tensors if node.many else tensors[0]], "kwargs": {}})
        entry.update(name=operation.name, inbound_nodes=nodes)
    return entry


def _input_shape(layer):
    shape = layer.input_shape
    if isinstance(shape, list):
        return [[None, *s] for s in shape]
    return [None, *shape]


def save(model, path) -> str:
    """Write a ``.keras`` archive that ``keras.models.load_model`` reads (atomically: nothing is left on failure)."""
    h5py = h5py_module()
    from netcore import __version__

    model._require_built()
    path = os.fspath(path)
    config = model_to_keras(model)  # a layer Keras cannot express is refused before anything is written
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        write_weights(model, handle)
    metadata = {"keras_version": "3.0.0", "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": f"netcore {__version__}"}  # fmt: skip
    with replacing(path, ".keras") as temporary, zipfile.ZipFile(temporary, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", buffer.getvalue())
    return path
