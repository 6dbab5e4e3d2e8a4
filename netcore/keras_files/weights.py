"""Keras's weight files (HDF5, through h5py), read into a netcore model and written from one.

Two layouts: Keras 3's ``.weights.h5`` (and the ``model.weights.h5`` inside ``.keras`` archives), where each layer's
arrays sit at a path built from its class (``layers/conv2d_1/vars/0``, in the order Keras lists the model's
layers), and the older one of Keras 2 and of the ``keras.applications`` weight files (``layer_names`` and
``weight_names`` attributes), matched by layer name, or in order where the names differ. Every array is read and
checked before anything is written into the model; a file that does not fit says which layer and which shapes.
"""

from __future__ import annotations

import os

import numpy as np

from netcore.atomic import replacing
from netcore.errors import BackendUnavailableError, CheckpointError
from netcore.keras_files.layers import keras_class, keras_name
from netcore.models.graph import is_model
from netcore.models.symbolic import InputLayer


def h5py_module():
    try:
        import h5py
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Keras files need h5py ({exc}); install it with: pip install 'netcore-nn[keras]'"
        ) from None
    return h5py


# ----------------------------------------------------------------------------------------------- Keras's order
def keras_layers(model) -> list:
    """The model's layers as Keras lists them (``model.layers``): a Sequential model's in turn without its
    InputLayer, a functional model's in Keras's order with its InputLayers (netcore orders them alike)."""
    return list(model.layers)


def _arrays(layer, backend) -> list[np.ndarray]:
    return [backend.to_numpy(layer.params[s.name]) for s in layer.param_specs()] + [
        backend.to_numpy(layer.state[s.name]) for s in layer.state_specs()
    ]


def _targets(layer) -> list[tuple[dict, str, tuple]]:
    return [(layer.params, s.name, tuple(s.shape)) for s in layer.param_specs()] + [
        (layer.state, s.name, tuple(s.shape)) for s in layer.state_specs()
    ]


def _sublayers(layer) -> list[tuple[str, object]]:
    """Where a layer's arrays sit below its own path: a recurrent layer's in its cell, a Bidirectional's in both
    directions' cells, any other's in its own ``vars``."""
    from netcore.layers.bidirectional import Bidirectional
    from netcore.layers.recurrent import _Recurrent

    if isinstance(layer, Bidirectional):
        return [("forward_layer/cell", layer.forward_layer), ("backward_layer/cell", layer.backward_layer)]
    if isinstance(layer, _Recurrent):
        return [("cell", layer)]
    return [("", layer)]


def _keyed(model):
    """``(key, layer)`` for each layer directly in ``model``: Keras 3 names a layer's group after its class,
    numbered within the container (``conv2d``, ``conv2d_1``, ...; a nested functional model ``functional``)."""
    used = {}
    for operation in keras_layers(model):
        base = "functional" if type(operation).__name__ == "Model" else keras_name(keras_class(operation))
        count = used.get(base)
        used[base] = 0 if count is None else count + 1
        yield (base if count is None else f"{base}_{count + 1}"), operation


def _placed(model, prefix: str = "") -> list[tuple[str, object]]:
    """``(path of a vars group, layer)`` for every layer of ``model`` (nested models opened), Keras 3's layout."""
    found = []
    for key, operation in _keyed(model):
        path = f"{prefix}layers/{key}"
        if is_model(operation):
            found += _placed(operation, path + "/")
        elif not isinstance(operation, InputLayer):
            found += [(f"{path}/{sub}/vars".replace("//", "/"), part) for sub, part in _sublayers(operation)]
    return found


# ----------------------------------------------------------------------------------------------- reading
def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _names(attribute) -> list[str]:
    return [_text(v) for v in np.asarray(attribute).ravel()]


def _assign(model, pairs: list[tuple[object, list[np.ndarray]]], path: str) -> None:
    """Check every array's shape against its layer, then write them all (nothing is written if one does not fit)."""
    writes = []
    for layer, arrays in pairs:
        targets = _targets(layer)
        if len(arrays) != len(targets):
            raise CheckpointError(
                f"{path}: layer {layer.name} has {len(targets)} arrays in netcore, the file {len(arrays)}"
            )
        for (store, name, shape), array in zip(targets, arrays, strict=True):
            if tuple(array.shape) != shape:
                raise CheckpointError(
                    f"{path}: layer {layer.name}.{name} has shape {shape}, the file {tuple(array.shape)}"
                )
            writes.append((store, name, array))
    backend = model.backend
    for store, name, array in writes:
        store[name][...] = backend.asarray(np.asarray(array), model.dtype)


def _read_keras3(model, root, path: str) -> list:
    pairs = []
    for where, layer in _placed(model):
        group = root.get(where)
        if group is None:
            raise CheckpointError(
                f"{path}: no weights for layer {layer.name} at {where} (the file is of another architecture)"
            )
        pairs.append((layer, [np.asarray(group[str(i)]) for i in range(len(group))]))
    return pairs


def _read_legacy(model, root, path: str) -> list:
    """Keras 2's layout: by layer name where every weighted layer's name is in the file, else in order."""
    names = _names(root.attrs["layer_names"])
    stored = {}
    for name in names:
        group = root[name]
        weight_names = _names(group.attrs.get("weight_names", []))
        if weight_names:
            stored[name] = [np.asarray(group[w]) for w in weight_names]
    weighted = [op for op in model.layers if not isinstance(op, InputLayer) and (is_model(op) or _targets(op))]
    if all(op.name in stored for op in weighted):  # by name (a nested model's arrays go to its layers in turn)
        pairs = []
        for op in weighted:
            arrays = stored[op.name]
            for leaf in op.leaf_layers() if is_model(op) else [op]:
                count = len(_targets(leaf))
                pairs.append((leaf, arrays[:count]))
                arrays = arrays[count:]
        return pairs
    leaves = [layer for layer in model.leaf_layers() if _targets(layer)]
    if len(stored) != len(leaves):
        raise CheckpointError(
            f"{path}: the file has weights for {len(stored)} layers ({', '.join(stored)}), the model for "
            f"{len(leaves)} ({', '.join(layer.name for layer in leaves)}), and the names differ"
        )
    return list(zip(leaves, stored.values(), strict=True))  # Keras's rule for other names: in order


def load_weights(model, path) -> None:
    """Read a Keras weight file into ``model`` (see the module's description); CheckpointError if it does not
    fit or cannot be read."""
    h5py = h5py_module()
    path = os.fspath(path)
    model._require_built()
    model._claim()
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            pairs = _read_legacy(model, root, path) if "layer_names" in root.attrs else _read_keras3(model, root, path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable Keras weight file ({type(exc).__name__}: {exc})") from None
    _assign(model, pairs, path)


# ----------------------------------------------------------------------------------------------- writing
def write_weights(model, handle) -> None:
    """Write ``model``'s arrays into an open HDF5 file in Keras 3's layout."""
    model._claim()
    backend = model.backend

    def container(group, owner) -> None:
        layers_group = group.create_group("layers")
        for key, operation in _keyed(owner):
            child = layers_group.create_group(key)
            if is_model(operation):
                container(child, operation)
                continue
            for sub, part in _sublayers(operation):
                target = child.require_group(sub) if sub else child
                variables = target.create_group("vars")
                variables.attrs["name"] = part.name
                for i, array in enumerate(_arrays(part, backend)):
                    variables.create_dataset(str(i), data=array)
                if sub.endswith("/cell"):  # a Bidirectional's direction: a layer of its own around the cell
                    child.require_group(sub.removesuffix("/cell")).create_group("vars").attrs["name"] = part.name
            if "vars" not in child:
                child.create_group("vars").attrs["name"] = operation.name
        group.create_group("vars").attrs["name"] = owner.name

    container(handle, model)


def save_weights(model, path) -> str:
    """Write a Keras 3 ``.weights.h5`` file (``keras.Model.load_weights`` reads it) atomically."""
    h5py = h5py_module()
    model._require_built()
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise CheckpointError(f"{path}: Keras weight files end in .weights.h5")
    with replacing(path, ".weights.h5") as temporary, h5py.File(temporary, "w") as handle:
        write_weights(model, handle)
    return path
