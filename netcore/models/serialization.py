"""Architectures as JSON and back: what checkpoints, :meth:`Model.clone` and distributed training's agreement check
use. A layer is ``{"class", "name", "config"}``; a model adds its own configuration (a Sequential model its layers
and input shape, a functional one its graph: every operation once, then every call in order). Only netcore's own
classes are rebuilt; nothing in a configuration is executed."""

from __future__ import annotations

from netcore import layers as layers_mod
from netcore.errors import ConfigurationError
from netcore.models.graph import is_model
from netcore.models.symbolic import InputLayer


def operation_config(operation) -> dict:
    if is_model(operation):
        return {"class": type(operation).__name__, "name": operation.name, "config": operation.get_config()}
    return {"class": type(operation).__name__, "name": operation.name, "config": operation.config()}


def model_from_config(kind: str, config: dict, device, dtype: str, seed):
    """A new model of class ``kind`` ("Sequential" or "Model") on ``device`` from :meth:`Model.get_config`."""
    from netcore.models import Model, Sequential

    if kind == "Sequential":
        return Sequential(
            [operation_from_config(entry, device, dtype) for entry in config["layers"]],
            input_shape=tuple(config["input_shape"]),
            device=device,
            dtype=dtype,
            seed=seed,
            name=config.get("name"),
        )
    if kind != "Model":
        raise ConfigurationError(f"unknown model class {kind!r}")
    graph = config["graph"]
    operations = {entry["name"]: operation_from_config(entry, device, dtype) for entry in graph["layers"]}
    produced: dict[str, list] = {
        name: [op.inbound_nodes[-1].outputs] for name, op in operations.items() if isinstance(op, InputLayer)
    }

    def tensor(ref):
        name, call, index = ref
        return produced[name][call][index]

    for call in graph["calls"]:
        operation = operations[call["layer"]]
        inputs = [tensor(ref) for ref in call["inputs"]]
        outputs = operation(inputs if call["many"] else inputs[0])
        produced.setdefault(call["layer"], []).append(outputs if isinstance(outputs, list) else [outputs])
    outputs = [tensor(ref) for ref in graph["outputs"]]
    keys = config.get("output_keys")
    return Model(
        inputs=[tensor(ref) for ref in graph["inputs"]],
        outputs=dict(zip(keys, outputs, strict=True)) if keys else outputs,
        name=config.get("name"),
        device=device,
        dtype=dtype,
        seed=seed,
    )


def operation_from_config(entry: dict, device, dtype: str):
    kind = entry["class"]
    if kind in ("Sequential", "Model"):
        return model_from_config(kind, entry["config"], device, dtype, None)
    if kind == "InputLayer":
        return InputLayer(**entry["config"])
    return layers_mod.from_config(kind, entry["config"])
