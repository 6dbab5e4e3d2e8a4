"""The networks ``netcore train`` builds from its options (host side): convolutional blocks, recurrent layers and
the dense head, compiled for the task."""

from __future__ import annotations

import netcore
from netcore.cli_args import AUGMENTATIONS


def build_model(args, input_shape, task: str, n_classes: int | None, first_layers=()) -> netcore.Sequential:
    """The compiled network the options describe, for samples of ``input_shape``; ``first_layers`` go in front
    (Rescaling for image files)."""
    from netcore.layers import Activation, BatchNorm, Bidirectional, Conv2D, Dense, Dropout, Flatten, MaxPooling2D

    regularizer = netcore.regularizers.L2(args.l2) if args.l2 else None
    layers = [*first_layers, *(AUGMENTATIONS[name][0](strength) for name, strength in args.augment or [])]
    for filters in args.conv or []:
        if args.batchnorm:
            layers += [Conv2D(filters, 3, padding="same", use_bias=False), BatchNorm(), Activation(args.activation)]
        else:
            layers.append(Conv2D(filters, 3, padding="same", activation=args.activation))
        layers.append(MaxPooling2D(2, padding="same"))
    recurrent = args.rnn or []
    for i, (kind, units, both) in enumerate(recurrent):
        layer = getattr(netcore.layers, kind)(units, return_sequences=i < len(recurrent) - 1)
        layers.append(Bidirectional(layer) if both else layer)
    if len(input_shape) > 1 and not recurrent:
        layers.append(Flatten())
    for width in args.hidden:
        if args.batchnorm:
            layers += [
                Dense(width, use_bias=False, kernel_regularizer=regularizer),
                BatchNorm(),
                Activation(args.activation),
            ]
        else:
            layers.append(Dense(width, args.activation, kernel_regularizer=regularizer))
        if args.dropout:
            layers.append(Dropout(args.dropout))
    classification = task == "classification"
    layers.append(Dense(n_classes, "softmax") if classification else Dense(1))
    model = netcore.Sequential(layers, input_shape=input_shape, device=args.device, dtype=args.dtype, seed=args.seed)
    model.compile(
        netcore.optimizers.get(args.optimizer, lr=args.lr, global_clipnorm=args.clipnorm),
        "cross_entropy" if classification else "mse",
        ["accuracy"] if classification else ["mae", "r2"],
    )
    return model
