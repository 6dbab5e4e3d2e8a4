"""``model.save(path)`` and ``netcore.load(path, device=...)``: a model, its training state and its callbacks'
state in one checkpoint file (format in :mod:`netcore.checkpoint`)."""

from __future__ import annotations

import numpy as np

import netcore
from netcore import checkpoint, losses, optimizers, schedules
from netcore.errors import CheckpointError, NetcoreError
from netcore.models.serialization import model_from_config


def _laid_out_config(model) -> dict:
    """The model's configuration with each layer's trainable flag as the buffers are laid out (a change not yet
    compiled is not saved)."""
    saved = {id(layer): layer.trainable for layer in model.buffers.layers}
    for layer, flag in zip(model.buffers.layers, model.buffers.layout, strict=True):
        layer.trainable = flag
    try:
        return model.get_config()
    finally:
        for layer in model.buffers.layers:
            layer.trainable = saved[id(layer)]


def save_model(model, path) -> None:
    model._require_built()
    model._claim()
    backend = model.backend
    arrays = {"params": backend.to_numpy(model.parameter_buffer), "state": backend.to_numpy(model.state_buffer)}
    config = _laid_out_config(model)
    manifest = {
        "netcore_version": netcore.__version__,
        "model": type(model).__name__,
        "dtype": model.dtype_name,
        "device": model.device,
        "seed": model.seed,
        "epochs_trained": model.epochs_trained,
        "rng_state": backend.rng_state(model.rng),
        "compiled": None,
        "optimizer": None,
        "schedule": None,
        "callbacks": {},
        "metadata": model.metadata,
    }
    if type(model).__name__ == "Sequential":  # the layout every release has read
        manifest.update(input_shape=config["input_shape"], layers=config["layers"], name=config["name"])
    else:
        manifest["config"] = config
    if model.heads:
        manifest["loss"] = {"class": model.heads[0].loss.name, "config": model.heads[0].loss.config()}
        manifest["metrics"] = model.heads[0].metric_names
        manifest["compiled"] = [
            {
                "loss": {"class": head.loss.name, "config": head.loss.config()},
                "loss_weight": head.weight,
                "metrics": head.metric_names,
            }
            for head in model.heads
        ]
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
    for cb in model.active_callbacks or []:
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
    device = device or manifest["device"]
    if manifest.get("model", "Sequential") == "Sequential":
        # Checkpoints of dense-only releases record the input width alone.
        shape = manifest["input_shape"] if "input_shape" in manifest else [int(manifest["input_dim"])]
        config = {"layers": manifest["layers"], "input_shape": shape, "name": manifest.get("name")}
        model = model_from_config("Sequential", config, device, manifest["dtype"], manifest["seed"])
    else:
        model = model_from_config(manifest["model"], manifest["config"], device, manifest["dtype"], manifest["seed"])
    backend = model.backend
    for name, target in (("params", model.parameter_buffer), ("state", model.state_buffer)):
        if arrays[name].shape != tuple(target.shape):
            raise CheckpointError(
                f"array {name!r} has {arrays[name].shape[0]} entries; the architecture needs {target.shape[0]}"
            )
        target[...] = backend.asarray(arrays[name], model.dtype)
    backend.set_rng_state(model.rng, manifest["rng_state"])
    model.epochs_trained = int(manifest["epochs_trained"])
    compiled = manifest.get("compiled")
    if compiled is None and manifest.get("loss") is not None:  # checkpoints of single-output releases
        compiled = [{"loss": manifest["loss"], "loss_weight": 1.0, "metrics": manifest["metrics"]}]
    if compiled:
        spec = manifest["optimizer"]
        optimizer = optimizers.from_config(spec["class"], spec["hyperparameters"]) if spec else "adam"
        schedule = manifest["schedule"]
        schedule = schedules.from_config(schedule["class"], schedule["config"]) if schedule else None
        model.compile(
            optimizer,
            [losses.from_config(head["loss"]["class"], head["loss"]["config"]) for head in compiled],
            [head["metrics"] for head in compiled],
            schedule=schedule,
            loss_weights=[head["loss_weight"] for head in compiled],
        )
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
