"""The command line's arguments (host side): the parser that exits with one line, the types of option values, the
data-source options every command shares, and the check that an output file can be written before a run starts."""

from __future__ import annotations

import argparse
import math
import os

import netcore
from netcore import datasets
from netcore.errors import ConfigurationError


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (``netcore: error: ...``) and exit 2."""

    def error(self, message):
        self.exit(2, f"netcore: error: {message}\n")


class HelpWithDefaults(argparse.HelpFormatter):
    """Help lines that end with the option's default, where it has one worth saying."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if action.option_strings and default is not None and default is not False and default != argparse.SUPPRESS:
            text += f" (default: {','.join(map(str, default)) if isinstance(default, list) else default})"
        return text


def number(kind, check, description):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    return parse


positive_int = number(int, lambda v: v > 0, "a positive integer")
positive_float = number(float, lambda v: v > 0 and math.isfinite(v), "a positive finite number")
rate = number(float, lambda v: 0 <= v < 1, "a rate in [0, 1)")
fraction = number(float, lambda v: 0 < v < 1, "a fraction in (0, 1)")
non_negative = number(float, lambda v: v >= 0 and math.isfinite(v), "a non-negative number")


def hidden(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated layer widths, got {text!r}") from None
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"--hidden widths must be positive integers, got {text!r}")
    return sizes


#: ``--augment`` names, each with the layer it adds and its default strength (``name:strength`` overrides it).
#: Geometric ones fill with black, the background of the digit and MNIST images.
AUGMENTATIONS = {
    "flip": (lambda s: netcore.layers.RandomFlip("horizontal"), None),
    "translate": (lambda s: netcore.layers.RandomTranslation(s, s, fill_mode="constant"), 0.1),
    "rotate": (lambda s: netcore.layers.RandomRotation(s, fill_mode="constant"), 0.03),
    "zoom": (lambda s: netcore.layers.RandomZoom(s, fill_mode="constant"), 0.1),
    "brightness": (lambda s: netcore.layers.RandomBrightness(s, value_range=(0, 1)), 0.2),
    "contrast": (lambda s: netcore.layers.RandomContrast(s, value_range=(0, 1)), 0.2),
    "erase": (lambda s: netcore.layers.RandomErasing(s), 0.5),
}


def augment(text: str) -> list[tuple[str, float | None]]:
    """``translate,rotate:0.1`` -> ``[("translate", 0.1), ("rotate", 0.1)]`` (defaults filled in)."""
    chosen = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, strength = part.partition(":")
        if name not in AUGMENTATIONS:
            raise argparse.ArgumentTypeError(
                f"--augment takes {', '.join(AUGMENTATIONS)} (name[:strength]), got {name!r}"
            )
        default = AUGMENTATIONS[name][1]
        try:
            value = default if not strength else float(strength)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--augment {name}: strength must be a number, got {strength!r}") from None
        chosen.append((name, value))
    if not chosen:
        raise argparse.ArgumentTypeError("--augment needs at least one name")
    return chosen


#: ``--rnn`` kinds and their layers (a ``bi`` prefix wraps one in Bidirectional: ``bilstm:32``).
RECURRENT = {"rnn": "SimpleRNN", "simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def rnn(text: str) -> list[tuple[str, int, bool]]:
    """``lstm:64,bigru:32`` -> ``[("LSTM", 64, False), ("GRU", 32, True)]``."""
    layers = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        kind, _, units = part.partition(":")
        both = kind.startswith("bi") and kind[2:] in RECURRENT
        kind = kind[2:] if both else kind
        if kind not in RECURRENT:
            raise argparse.ArgumentTypeError(
                f"--rnn takes kind:units with kind one of {', '.join(RECURRENT)} (bi-prefixed for Bidirectional), "
                f"got {part!r}"
            )
        try:
            size = int(units)
        except ValueError:
            size = 0
        if size <= 0:
            raise argparse.ArgumentTypeError(f"--rnn {kind}: units must be a positive integer, got {units!r}")
        layers.append((RECURRENT[kind], size, both))
    if not layers:
        raise argparse.ArgumentTypeError("--rnn needs at least one kind:units")
    return layers


def image_size(text: str) -> tuple[int, int]:
    """``64,48`` -> ``(64, 48)`` (height, width); ``32`` -> ``(32, 32)``."""
    parts = hidden(text)
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH, got {text!r}")
    return (parts[0], parts[-1])


#: What a bare ``--augment`` adds: transforms that keep a label true for photos and digits alike.
DEFAULT_AUGMENT = "translate,rotate,zoom"


def data_options(parser, default_dataset=None, images: bool = False):
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=default_dataset, choices=datasets.NAMES)
    if images:
        source.add_argument(
            "--images", metavar="DIR", help="a folder of images, one subfolder per class (extra: images)"
        )
    source.add_argument("--csv", help="a CSV file with a header row")
    source.add_argument("--mnist", help="a folder with MNIST's IDX files (train-images-idx3-ubyte[.gz], ...)")
    source.add_argument(
        "--npy", help="a .npy file of features, memory-mapped and read a block at a time (labels: --labels)"
    )
    parser.add_argument("--target", help="the label column of --csv")
    parser.add_argument("--labels", help="the .npy file of labels for --npy, one per row")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def check_output(path: str, flag: str) -> None:
    """Fail before training, not after it, when an output file cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigurationError(f"{flag} {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ConfigurationError(f"{flag} {path}: the directory {directory} is not writable")
    if os.path.isdir(path):
        raise ConfigurationError(f"{flag} {path} is a directory")


def tracking_options(parser, what: str = "the training") -> None:
    """``--tensorboard DIR`` and ``--mlflow [EXPERIMENT]``."""
    parser.add_argument("--tensorboard", metavar="DIR", help=f"write {what} as TensorBoard event files here")
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        metavar="EXPERIMENT",
        help=f"log {what} as MLflow runs (of EXPERIMENT; MLFLOW_TRACKING_URI says where)",
    )


def tracking_callbacks(args) -> list:
    """The callbacks ``--tensorboard`` and ``--mlflow`` ask for (each checks its package before training starts)."""
    callbacks = []
    if getattr(args, "tensorboard", None):
        callbacks.append(netcore.callbacks.TensorBoard(args.tensorboard))
    if getattr(args, "mlflow", None) is not None:
        callbacks.append(netcore.callbacks.MLflowLogger(experiment=args.mlflow or None))
    return callbacks
