"""The ``netcore`` command line (host side): ``train``, ``evaluate``, ``predict``, ``summary``, ``devices``,
``bench``. Bad arguments and every netcore error exit with status 2 and one line on stderr, never a traceback; a
file-system failure during a run (disk full, say) exits 1, also with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import sys
import time

import numpy as np

import netcore
from netcore import datasets
from netcore.cli_args import (
    AUGMENTATIONS,
    DEFAULT_AUGMENT,
    HelpWithDefaults,
    Parser,
    augment,
    check_output,
    data_options,
    fraction,
    hidden,
    image_size,
    non_negative,
    positive_float,
    positive_int,
    rate,
    rnn,
    tracking_callbacks,
    tracking_options,
)
from netcore.cli_models import build_model
from netcore.errors import ConfigurationError, NetcoreError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="netcore", description="Train, evaluate and benchmark netcore models.")
    parser.add_argument("--version", action="version", version=f"netcore {netcore.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    commands.add_parser("devices", help="list the backends and whether each can run here")

    train = commands.add_parser(
        "train",
        help="train a network (dense, or convolutional with --conv) on a data set or CSV file",
        formatter_class=HelpWithDefaults,
    )
    data_options(train, images=True)
    train.add_argument("--device", default=None, help="numpy, numba, cupy[:N], cpu, gpu or auto (default: auto)")
    train.add_argument("--hidden", type=hidden, default=[128, 64], help="hidden layer widths")
    train.add_argument(
        "--conv",
        type=hidden,
        default=None,
        metavar="FILTERS",
        help="convolutional blocks before the hidden layers, one per width: 3x3 same convolution, the activation, "
        "2x2 max pooling (the data set is read as images)",
    )
    train.add_argument(
        "--rnn",
        type=rnn,
        default=None,
        metavar="KIND:UNITS",
        help="recurrent layers before the hidden layers, e.g. lstm:64 or gru:64,lstm:32 (rnn, lstm, gru; bilstm, "
        "... for Bidirectional); the data set is read as sequences",
    )
    train.add_argument(
        "--sequences",
        action="store_true",
        help="read the data set as sequences (digits: each image row by row, (n, 8, 8))",
    )
    train.add_argument(
        "--clipnorm",
        type=positive_float,
        default=None,
        help="clip the gradient of all parameters to this Euclidean norm before each step (PyTorch's "
        "clip_grad_norm_; Keras's global_clipnorm)",
    )
    train.add_argument(
        "--augment",
        type=augment,
        default=None,
        nargs="?",
        const=augment(DEFAULT_AUGMENT),
        metavar="NAMES",
        help=f"augmentation layers on the images, in order: {', '.join(AUGMENTATIONS)} (name:strength to set one; "
        f"alone: {DEFAULT_AUGMENT})",
    )
    train.add_argument(
        "--image-size",
        type=image_size,
        default=(64, 64),
        metavar="HEIGHT,WIDTH",
        help="with --images: every image resized to this",
    )
    train.add_argument(
        "--color-mode", default="rgb", choices=("rgb", "grayscale", "rgba"), help="with --images: the channels read"
    )
    train.add_argument(
        "--activation", default="relu", help="of the hidden layers: relu, leaky_relu, elu, gelu, tanh, sigmoid, ..."
    )
    train.add_argument(
        "--optimizer", default="adam", help="sgd, adam, adamw, adagrad, rmsprop, adadelta or nadam (defaults of each)"
    )
    train.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    train.add_argument("--epochs", type=positive_int, default=30, help="passes over the training rows")
    train.add_argument("--batch-size", type=positive_int, default=32, help="rows per optimizer step")
    train.add_argument("--dropout", type=rate, default=0.0, help="dropout rate after each hidden layer")
    train.add_argument("--batchnorm", action="store_true", help="batch normalisation before each hidden activation")
    train.add_argument("--l2", type=non_negative, default=0.0, help="L2 penalty on every weight matrix")
    train.add_argument(
        "--early-stopping",
        type=positive_int,
        default=None,
        metavar="PATIENCE",
        help="stop when validation loss has not improved for PATIENCE epochs",
    )
    train.add_argument(
        "--validation-split",
        type=fraction,
        default=None,
        help="share of the training rows held out for validation (0.1 with --early-stopping)",
    )
    train.add_argument("--seed", type=int, default=0, help="fixes the split, the weights and the shuffling")
    train.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="of weights and data")
    train.add_argument("--save", help="write the trained model to this checkpoint file (.ncz)")
    train.add_argument("--plot", help="write loss and accuracy curves to this PNG file")
    train.add_argument(
        "--params",
        help="a JSON file with a configuration found by `netcore tune` (its output, or its best_params alone); "
        "it replaces --hidden, --activation, --optimizer, --lr, --batch-size, --dropout, --batchnorm and --l2",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="train data-parallel over the processes of `mpiexec -n N netcore train ...` (rank 0 reports and saves)",
    )
    train.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay each training step as recorded CUDA graphs (cupy; elsewhere a warning, then eager steps)",
    )
    tracking_options(train)

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on its test split or other data")
    evaluate.add_argument("model")
    data_options(evaluate, images=True)
    evaluate.add_argument("--device", default=None)

    predict = commands.add_parser("predict", help="predict the rows of a CSV file with a saved model")
    predict.add_argument("model")
    predict.add_argument("--csv", required=True)
    predict.add_argument("--output", help="write predictions as CSV here (default: standard output)")
    predict.add_argument("--device", default=None)

    summary = commands.add_parser("summary", help="print a saved model's layers and parameter counts")
    summary.add_argument("model")

    export = commands.add_parser("export", help="write a saved model as ONNX (extra: onnx)")
    export.add_argument("model")
    export.add_argument("--output", required=True, help="the .onnx file to write")
    export.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (17 or newer)")
    export.add_argument("--json", action="store_true", help="print one JSON object")

    from netcore import cli_tune

    cli_tune.add_parser(commands)

    bench = commands.add_parser("bench", help="compare netcore with PyTorch and the GEMM floor on a workload")
    from benchmarks.compare import build_parser as bench_parser

    bench_parser(bench)
    return parser


# ----------------------------------------------------------------------------------------------- data
def _load_data(args, seed: int, validation_size: float = 0.0, dtype: str = "float32", layout: str = "table"):
    """The data set of the arguments, as a table, images or sequences (``layout``)."""
    options = dict(seed=seed, validation_size=validation_size, dtype=dtype)
    as_images = layout == "images"
    if args.csv:
        if not args.target:
            header, _ = datasets.read_csv_columns(args.csv)  # a missing or unreadable file is the first error
            raise ConfigurationError(f"--csv needs --target COLUMN (columns: {', '.join(header)})")
        return datasets.load_csv(args.csv, args.target, **options), {"csv": args.csv, "target": args.target}
    if args.target:
        raise ConfigurationError("--target only goes with --csv")
    if bool(args.npy) != bool(args.labels):
        raise ConfigurationError("--npy and --labels go together: features and labels, one .npy file each")
    if args.npy:
        if layout != "table":
            raise ConfigurationError("--npy reads its rows as stored; --conv, --augment and --rnn need a data set")
        return datasets.load_npy(args.npy, args.labels), {"npy": args.npy, "labels": args.labels}
    if args.mnist:
        return datasets.load_mnist(args.mnist, as_images=as_images, **options), {"mnist": args.mnist}
    name = args.dataset or "digits"
    key = name.strip().lower().replace("-", "_")
    as_sequences = layout == "sequences" and key not in datasets.SEQUENCES  # those are sequences anyway
    return datasets.load(name, as_images=as_images, as_sequences=as_sequences, **options), {"dataset": name}


def _data_record(data, source: dict, seed: int, validation_size: float) -> dict:
    return {
        **source,
        "seed": seed,
        "validation_size": validation_size,
        "task": data.task,
        "classes": [c if isinstance(c, (int, str)) else str(c) for c in data.classes],
        "features": data.feature_names,
        "mean": data.feature_mean.tolist(),
        "std": data.feature_std.tolist(),
        "input_shape": list(data.input_shape),
        "layout": _layout(data),
    }


def _layout(data) -> str:
    return {1: "table", 2: "sequences", 3: "images"}[len(data.input_shape)]


# ----------------------------------------------------------------------------------------------- commands
def _devices(args) -> int:
    rows = netcore.devices()
    width = max(len(row.name) for row in rows)
    print(f"{'backend':{width}}  available  reason")
    for row in rows:
        print(f"{row.name:{width}}  {'yes' if row.available else 'no ':9}  {row.reason or ''}".rstrip())
    return 0


def _model_from_params(args, data):
    """The model and batch size of a configuration saved from ``netcore tune``."""
    from netcore import tuning

    if args.conv or args.rnn or args.augment or args.sequences:
        raise ConfigurationError("--params describes a dense network; it does not combine with --conv or --rnn")
    try:
        with open(args.params) as handle:
            saved = json.load(handle)
        params = saved.get("best_params", saved)
        classification = data.task == "classification"
        model = tuning.build_model(params, data.n_features, data.n_classes or 1, classification, args.device, args.seed)
        return model, int(params["batch_size"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigurationError(f"--params {args.params}: not a configuration from netcore tune ({exc!r})") from None


def _targets(data, y):
    return y if data.task == "classification" else y.reshape(-1, 1)


def _train(args) -> int:
    if args.images:
        from netcore import cli_images

        return cli_images.train(args)
    world = netcore.distributed.init() if args.distributed else None
    main = world is None or world.is_main  # the one process that reports and writes files
    if args.save and main:
        check_output(args.save, "--save")
    if args.plot and main:
        check_output(args.plot, "--plot")
        from netcore.plot import load_pyplot

        load_pyplot()  # a missing matplotlib is reported now, not after training
    validation_size = 0.0
    if (args.conv or args.augment) and (args.rnn or args.sequences):
        raise ConfigurationError("--conv and --augment read images, --rnn and --sequences sequences: choose one")
    layout = "images" if args.conv or args.augment else "sequences" if args.rnn or args.sequences else "table"
    data, source = _load_data(args, args.seed, validation_size, args.dtype, layout=layout)
    if args.params:
        model, args.batch_size = _model_from_params(args, data)
    else:
        model = build_model(args, data.input_shape, data.task, data.n_classes)
    split = args.validation_split or (0.1 if args.early_stopping else 0.0)
    callbacks = tracking_callbacks(args)
    if args.early_stopping:
        callbacks.append(netcore.callbacks.EarlyStopping(monitor="val_loss", patience=args.early_stopping))
    started = time.perf_counter()
    history = model.fit(
        data.X_train,
        _targets(data, data.y_train),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=split,
        callbacks=callbacks,
        verbose=0 if args.json or not main else 2,
        cuda_graph=args.cuda_graph,
        distributed=args.distributed,
    )
    seconds = time.perf_counter() - started
    test = model.evaluate(data.X_test, _targets(data, data.y_test), return_dict=True)
    model.metadata["data"] = _data_record(data, source, args.seed, validation_size)
    if not main:
        return 0
    if args.save:
        model.save(args.save)
    if args.plot:
        from netcore import plot

        plot.history(history, args.plot, title=f"{data.name} on {model.device}")
    result = {
        "device": model.device,
        "dataset": data.name,
        "task": data.task,
        "epochs": args.epochs,
        "epochs_run": len(history.epoch),
        "train_loss": history["loss"][-1] if history.epoch else None,
        **{
            (k if k.startswith("val_") else f"train_{k}"): v[-1]
            for k, v in history.history.items()
            if k not in ("loss", "lr", "epoch_time")
        },
        **{f"test_{k}": v for k, v in test.items()},
        "seconds": round(seconds, 3),
        "seed": args.seed,
        "hidden": args.hidden,
        "conv": args.conv or [],
        "rnn": [f"{'bi' if both else ''}{kind.lower()}:{units}" for kind, units, both in args.rnn or []],
        "augment": [name for name, _ in args.augment or []],
        "input_shape": list(model.input_shape),
        "parameters": model.count_params(),
        "dtype": args.dtype,
        "world_size": world.size if world else 1,
        "saved": args.save,
        "plot": args.plot,
        "tensorboard": args.tensorboard,
        "mlflow_run": next((cb.run_id for cb in callbacks if hasattr(cb, "run_id")), None),
    }
    if args.json:
        print(json.dumps(result))
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items())
        print(f"test {shown} on {model.device} in {seconds:.1f}s")
    return 0


def _evaluate(args) -> int:
    model = netcore.load(args.model, device=args.device)
    record = model.metadata.get("data", {})
    if args.images or record.get("layout") == "image files":
        from netcore import cli_images

        result = cli_images.evaluate(args, model, record)
        print(json.dumps(result) if args.json else ", ".join(f"{k} {v}" for k, v in result.items()))
        return 0
    if not (args.dataset or args.csv or args.mnist or args.npy):
        if not record:
            raise ConfigurationError("the model does not say what it was trained on; pass --dataset or --csv")
        args.dataset, args.csv, args.mnist = record.get("dataset"), record.get("csv"), record.get("mnist")
        args.npy, args.labels = record.get("npy"), record.get("labels")
        args.target = args.target or record.get("target")
    seed = record.get("seed", 0)
    layout = record.get("layout") or {1: "table", 2: "sequences", 3: "images"}[len(model.input_shape)]
    images = layout != "table"
    data, _ = _load_data(args, seed, record.get("validation_size", 0.0), model.dtype_name, layout=layout)
    if data.input_shape != model.input_shape:
        what = "samples of shape" if images else "features:"
        got, expected = (data.input_shape, model.input_shape) if images else (data.n_features, model.input_dim)
        raise ConfigurationError(f"the data has {what} {got}, the model takes {expected}")
    if not model.heads:  # a Keras file without a loss netcore has: score it as training would have
        classification = data.task == "classification"
        model.compile("adam", "cross_entropy" if classification else "mse", ["accuracy"] if classification else [])
    result = {
        "model": args.model,
        "device": model.device,
        "dataset": data.name,
        "rows": int(data.X_test.shape[0]),
        **{
            f"test_{k}": v
            for k, v in model.evaluate(data.X_test, _targets(data, data.y_test), return_dict=True).items()
        },
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


def _predict(args) -> int:
    model = netcore.load(args.model, device=args.device)
    record = model.metadata.get("data")
    if not record or "mean" not in record:
        raise ConfigurationError("the model carries no feature scaling; train it with `netcore train --save`")
    header, columns = datasets.read_csv_columns(args.csv)
    names = record.get("features") or [h for h in header if h != record.get("target")]
    missing = [name for name in names if name not in columns]
    if missing:
        raise datasets.DataError(f"{args.csv}: missing feature columns {missing}")
    X = np.column_stack([datasets._numeric(args.csv, name, columns[name]) for name in names])
    X = ((X - np.asarray(record["mean"])) / np.asarray(record["std"])).reshape(-1, *model.input_shape)
    out = model.predict(X.astype(model.dtype_name))
    rows = []
    if record.get("task") == "classification":
        classes = record["classes"]
        labels = model.predict_classes(X.astype(model.dtype_name))
        for label, probabilities in zip(labels, out, strict=True):
            rows.append([classes[label], *(f"{p:.6g}" for p in probabilities)])
        head = ["prediction", *(f"p_{c}" for c in classes)]
    else:
        rows = [[f"{v:.6g}"] for v in out[:, 0]]
        head = ["prediction"]
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(args.output, "w", newline="")) if args.output else sys.stdout
        writer = csv.writer(handle)
        writer.writerow(head)
        writer.writerows(rows)
    return 0


def _summary(args) -> int:
    netcore.load(args.model, device="numpy").summary()
    return 0


def _export(args) -> int:
    model = netcore.load(args.model, device="numpy")
    check_output(args.output, "--output")
    model.export(args.output, format="onnx", opset=args.opset)
    report = {"model": args.model, "output": args.output, "opset": args.opset, "dtype": model.dtype_name,
              "input_shape": list(model.input_shape), "output_shape": list(model.output_shape)}  # fmt: skip
    if args.json:
        print(json.dumps(report))
    else:
        print(f"wrote {args.output} (ONNX opset {args.opset}, {model.dtype_name}, input (batch, "
              f"{', '.join(map(str, model.input_shape))}))")  # fmt: skip
    return 0


def _tune(args) -> int:
    from netcore import cli_tune

    return cli_tune.run(args, lambda args, seed: _load_data(args, seed, 0.0, "float32"))


def _bench(args) -> int:
    from benchmarks.compare import run

    return run(args)


COMMANDS = {
    "devices": _devices,
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "summary": _summary,
    "export": _export,
    "tune": _tune,
    "bench": _bench,
}


def _fail(message: str, status: int) -> int:
    """Report an error once. In a distributed job where every rank failed together (a divergence, a disagreement),
    rank 0 reports it; an error on one rank alone is reported by that rank and ends the job, since the others are
    waiting for it."""
    world = netcore.distributed.current()
    if world is None or world.size == 1:
        print(f"netcore: error: {message}", file=sys.stderr)
    elif world.failed_together():
        if world.is_main:
            print(f"netcore: error: {message}", file=sys.stderr)
    else:
        print(f"netcore: error on rank {world.rank}: {message}", file=sys.stderr)
        world.abort(status)
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="netcore: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except NetcoreError as exc:
        return _fail(" ".join(str(exc).split()), 2)
    except OSError as exc:  # the file system failed us (disk full, permissions changed mid-run): still one line
        return _fail(str(exc), 1)
