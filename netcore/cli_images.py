"""``netcore train --images DIR`` and ``netcore evaluate`` of a model trained so (host side): a convolutional
network on a folder of images with one subfolder per class, streamed from the files, with a validation split."""

from __future__ import annotations

import json
import time

import netcore
from netcore.cli_args import tracking_callbacks
from netcore.cli_models import build_model
from netcore.errors import ConfigurationError
from netcore.layers import Rescaling
from netcore.utils import image_dataset_from_directory

#: The convolutional blocks when --conv is not given.
DEFAULT_CONV = [32, 64]


def _split(args, size, color_mode, seed, validation_split):
    return image_dataset_from_directory(
        args.images,
        image_size=size,
        color_mode=color_mode,
        batch_size=args.batch_size if hasattr(args, "batch_size") else 32,
        seed=seed,
        validation_split=validation_split,
        subset="both",
    )


def train(args) -> int:
    if args.rnn or args.sequences or args.params or args.distributed:
        raise ConfigurationError("--images trains a convolutional network: --rnn, --sequences, --params and "
                                 "--distributed do not combine with it")  # fmt: skip
    split = args.validation_split or 0.2
    training, validation = _split(args, args.image_size, args.color_mode, args.seed, split)
    args.conv = args.conv or DEFAULT_CONV
    shape = training.features.shape[1:]
    model = build_model(args, shape, "classification", len(training.class_names), first_layers=[Rescaling(1 / 255)])
    callbacks = tracking_callbacks(args)
    if args.early_stopping:
        callbacks.append(netcore.callbacks.EarlyStopping(monitor="val_loss", patience=args.early_stopping))
    started = time.perf_counter()
    history = model.fit(
        training,
        epochs=args.epochs,
        validation_data=validation,
        callbacks=callbacks,
        verbose=0 if args.json else 2,
        cuda_graph=args.cuda_graph,
    )
    seconds = time.perf_counter() - started
    model.metadata["data"] = {
        "images": args.images,
        "image_size": list(args.image_size),
        "color_mode": args.color_mode,
        "validation_size": split,
        "seed": args.seed,
        "classes": training.class_names,
        "layout": "image files",
    }
    if args.save:
        model.save(args.save)
    if args.plot:
        from netcore import plot

        plot.history(history, args.plot, title=f"{args.images} on {model.device}")
    last = {key: values[-1] for key, values in history.history.items()}
    result = {
        "device": model.device,
        "images": args.images,
        "classes": training.class_names,
        "train_images": len(training.features),
        "validation_images": len(validation.features),
        "input_shape": list(shape),
        "conv": args.conv,
        "augment": [name for name, _ in args.augment or []],
        "epochs": args.epochs,
        "epochs_run": len(history.epoch),
        "train_loss": last.get("loss"),
        "train_accuracy": last.get("accuracy"),
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "images_per_second": round(len(history.epoch) * len(training.features) / seconds, 1),
        "seconds": round(seconds, 3),
        "parameters": model.count_params(),
        "seed": args.seed,
        "saved": args.save,
        "tensorboard": args.tensorboard,
        "mlflow_run": next((cb.run_id for cb in callbacks if hasattr(cb, "run_id")), None),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"validation accuracy {result['val_accuracy']:.4f} on {model.device} in {seconds:.1f}s")
    return 0


def evaluate(args, model, record: dict) -> dict:
    """The validation split a model trained with --images held out (or another folder given with --images)."""
    if record.get("layout") != "image files":
        raise ConfigurationError("--images evaluates a model trained with `netcore train --images`")
    given = args.images
    args.images = folder = given or record["images"]
    _, validation = _split(
        args, tuple(record["image_size"]), record["color_mode"], record["seed"], record["validation_size"]
    )
    if validation.class_names != record["classes"]:
        raise ConfigurationError(
            f"{folder} has the classes {validation.class_names}; the model was trained on {record['classes']}"
        )
    scores = model.evaluate(validation, return_dict=True)
    return {"model": args.model, "device": model.device, "images": folder, "rows": len(validation.features),
            **{f"test_{k}": v for k, v in scores.items()}}  # fmt: skip
