"""``model.save(path)`` and ``netcore.load(path, device=...)``: a model, its training state and its callbacks'
state in one checkpoint file (format in :mod:`netcore.checkpoint`)."""

from __future__ import annotations

import numpy as np

import netcore
from netcore import checkpoint, layers, losses, optimizers, schedules
from netcore.errors import CheckpointError, NetcoreError


def save_model(model, path) -> None:
    model._require_built()
    model._claim()
    backend = model.backend
    arrays = {"params": backend.to_numpy(model._params), "state": backend.to_numpy(model._state)}
    manifest = {
        "netcore_version": netcore.__version__,
        "dtype": model.dtype_name,
        "device": model.device,
        "seed": model.seed,
        "input_shape": list(model.input_shape),
        # Each layer's trainable flag as the buffers are laid out (a change not yet compiled is not saved).
        "layers": [
            {"class": type(layer).__name__, "config": {**layer.config(), "trainable": trained}}
            for layer, trained in zip(model.layers, model._layout, strict=True)
        ],
        "epochs_trained": model.epochs_trained,
        "rng_state": backend.rng_state(model.rng),
        "loss": None if model.loss is None else {"class": model.loss.name, "config": model.loss.config()},
        "metrics": model.metric_names,
        "optimizer": None,
        "schedule": None,
        "callbacks": {},
        "metadata": model.metadata,
    }
    optimizer = model.optimizer
    if optimizer is not None:
        manifest["optimizer"] = {
            "class": type(optimizer).__name__,
            "hyperparameters": optimizer.hyperparameters(),
            "scalars": optimizer.scalar_state(),
            "buffers": sorted(optimizer.state),
        }
        for name, buffer in optimizer.state.items():
            arrays[f"optimizer.{name}"] = backend.to_numpy(buffer)
    if model.schedule is not None:
        manifest["schedule"] = {"class": type(model.schedule).__name__, "config": model.schedule.config()}
    for cb in getattr(model, "_active_callbacks", None) or []:
        values, cb_arrays = cb.get_state()
        entries = manifest["callbacks"].setdefault(type(cb).__name__, [])
        prefix = f"callback.{type(cb).__name__}.{len(entries)}"
        entries.append({"values": values, "arrays": sorted(cb_arrays)})
        arrays.update({f"{prefix}.{key}": np.asarray(value) for key, value in cb_arrays.items()})
    checkpoint.write(path, manifest, arrays)


def load_model(path, device=None):
    manifest, arrays = checkpoint.read(path)
    try:
        return _rebuild(manifest, arrays, device)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, NetcoreError) as exc:
        raise CheckpointError(
            f"{path}: the manifest does not describe a loadable model ({type(exc).__name__}: {exc})"
        ) from None


def _rebuild(manifest: dict, arrays: dict, device):
    built = [layers.from_config(entry["class"], entry["config"]) for entry in manifest["layers"]]
    model = netcore.Sequential(
        built,
        # Checkpoints of dense-only releases record the input width alone.
        input_shape=tuple(manifest["input_shape"]) if "input_shape" in manifest else int(manifest["input_dim"]),
        device=device or manifest["device"],
        dtype=manifest["dtype"],
        seed=manifest["seed"],
    )
    backend = model.backend
    for name, target in (("params", model._params), ("state", model._state)):
        if arrays[name].shape != tuple(target.shape):
            raise CheckpointError(
                f"array {name!r} has {arrays[name].shape[0]} entries; the architecture needs {target.shape[0]}"
            )
        target[...] = backend.asarray(arrays[name], model.dtype)
    backend.set_rng_state(model.rng, manifest["rng_state"])
    model.epochs_trained = int(manifest["epochs_trained"])
    if manifest["loss"] is not None:
        loss = losses.from_config(manifest["loss"]["class"], manifest["loss"]["config"])
        spec = manifest["optimizer"]
        optimizer = optimizers.from_config(spec["class"], spec["hyperparameters"]) if spec else "adam"
        schedule = manifest["schedule"]
        schedule = schedules.from_config(schedule["class"], schedule["config"]) if schedule else None
        model.compile(optimizer, loss, manifest["metrics"], schedule=schedule)
        if spec:
            model.optimizer.load_scalar_state(spec["scalars"])
            if sorted(model.optimizer.state) != sorted(spec["buffers"]):
                raise CheckpointError("optimizer state buffers do not match the optimizer's options")
            for name, buffer in model.optimizer.state.items():
                buffer[...] = backend.asarray(arrays[f"optimizer.{name}"], model.dtype)
    pending = {}
    for cls, entries in manifest["callbacks"].items():
        for i, entry in enumerate(entries):
            prefix = f"callback.{cls}.{i}"
            pending.setdefault(cls, []).append(
                (entry["values"], {key: arrays[f"{prefix}.{key}"] for key in entry["arrays"]})
            )
    model._pending_callback_state = pending
    model.metadata = dict(manifest.get("metadata") or {})
    return model
