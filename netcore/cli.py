"""The ``netcore`` command line: ``devices`` and ``train`` (host side: parses arguments, prints results).

Bad arguments and every netcore error exit with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import netcore
from netcore import datasets
from netcore.errors import NetcoreError


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (``netcore: error: ...``) and exit 2."""

    def error(self, message):
        self.exit(2, f"netcore: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}")
    return value


def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated layer widths, got {text!r}") from None
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"--hidden widths must be positive integers, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="netcore", description="Train and inspect netcore models.")
    parser.add_argument("--version", action="version", version=f"netcore {netcore.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("devices", help="list the backends and whether each can run here")

    bench = commands.add_parser("bench", help="compare netcore with PyTorch and the GEMM floor on a workload")
    from benchmarks.compare import build_parser as bench_parser

    bench_parser(bench)

    train = commands.add_parser("train", help="train a dense network on a bundled data set")
    train.add_argument("--dataset", default="digits", choices=datasets.NAMES)
    train.add_argument("--device", default=None, help="numpy, numba, cupy[:N], cpu, gpu or auto (default: auto)")
    train.add_argument("--hidden", type=_hidden, default=[128, 64], help="hidden layer widths, e.g. 128,64")
    train.add_argument("--activation", default="relu")
    train.add_argument("--optimizer", default="adam")
    train.add_argument("--lr", type=_positive_float, default=1e-3)
    train.add_argument("--epochs", type=_positive_int, default=30)
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--dropout", type=_rate, default=0.0)
    train.add_argument("--batchnorm", action="store_true")
    train.add_argument("--l2", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    train.add_argument("--json", action="store_true", help="print one JSON object instead of progress lines")
    return parser


def _devices(args) -> int:
    rows = netcore.devices()
    width = max(len(row.name) for row in rows)
    print(f"{'backend':{width}}  available  reason")
    for row in rows:
        print(f"{row.name:{width}}  {'yes' if row.available else 'no ':9}  {row.reason or ''}".rstrip())
    return 0


def _model(args, n_features: int, n_classes: int) -> netcore.Sequential:
    from netcore.layers import BatchNorm, Dense, Dropout

    layers = []
    for width in args.hidden:
        regularizer = netcore.regularizers.L2(args.l2) if args.l2 else None
        layers.append(Dense(width, None if args.batchnorm else args.activation, kernel_regularizer=regularizer))
        if args.batchnorm:
            layers += [BatchNorm(), netcore.layers.Activation(args.activation)]
        if args.dropout:
            layers.append(Dropout(args.dropout))
    layers.append(Dense(n_classes, "softmax"))
    return netcore.Sequential(layers, input_dim=n_features, device=args.device, dtype=args.dtype, seed=args.seed)


def _train(args) -> int:
    data = datasets.load(args.dataset, seed=args.seed, dtype=args.dtype)
    model = _model(args, data.n_features, data.n_classes)
    model.compile(optimizer=netcore.optimizers.get(args.optimizer, lr=args.lr), loss="cross_entropy",
                  metrics=["accuracy"])  # fmt: skip
    started = time.perf_counter()
    history = model.fit(data.X_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size,
                        verbose=0 if args.json else 2)  # fmt: skip
    seconds = time.perf_counter() - started
    test = model.evaluate(data.X_test, data.y_test)
    result = {
        "device": model.device,
        "dataset": data.name,
        "epochs": args.epochs,
        "train_loss": history["loss"][-1] if history.epoch else None,
        "train_accuracy": history["accuracy"][-1] if history.epoch else None,
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "seconds": round(seconds, 3),
        "seed": args.seed,
        "hidden": args.hidden,
        "parameters": model.count_params(),
        "dtype": args.dtype,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) on {model.device} in {seconds:.1f}s")
    return 0


def _bench(args) -> int:
    from benchmarks.compare import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="netcore: %(message)s")
    try:
        return {"devices": _devices, "train": _train, "bench": _bench}[args.command](args)
    except NetcoreError as exc:
        print(f"netcore: error: {exc}", file=sys.stderr)
        return 2
