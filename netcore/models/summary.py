"""``model.summary()``: one row per layer (a nested model is one row), its output shape and parameter count, and for
graphs what each layer is connected to (Keras's ``name[call][output]``); totals split into trainable and not."""

from __future__ import annotations

import math

from netcore.models.graph import is_model
from netcore.models.symbolic import InputLayer


def _shape(shape) -> str:
    return "(" + ", ".join(map(str, (None, *shape))) + ")"


def _counts(layer, trained: dict) -> tuple[int, int]:
    """(trainable, non-trainable) values of ``layer`` as the model's buffers are laid out."""
    if is_model(layer):
        pairs = [_counts(inner, trained) for inner in layer.leaf_layers()]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    learned = sum(math.prod(spec.shape) for spec in layer.param_specs())
    tracked = sum(math.prod(spec.shape) for spec in layer.state_specs())
    return (learned, tracked) if trained.get(id(layer), True) else (0, learned + tracked)


def table(model) -> str:
    graph = model.graph
    trained = {id(layer): flag for layer, flag in zip(model.buffers.layers, model.buffers.layout, strict=True)}
    connected = not _is_line(model)
    header = ("layer", "output shape", "params") + (("connected to",) if connected else ())
    rows = [header]
    for layer in model.layers:
        nodes = graph.calls_of(layer)
        shapes = {tuple(t.sample_shape) for node in nodes for t in node.outputs}
        shape = _shape(next(iter(shapes))) if len(shapes) == 1 else "multiple"
        learned, tracked = _counts(layer, trained)
        row = (f"{layer.name} ({type(layer).__name__})", shape, f"{learned + tracked:,}")
        if connected:
            sources = [
                f"{t.node.operation.name}[{graph.node_index(t.node)}][{t.index}]" for node in nodes for t in node.inputs
            ]
            row += (", ".join(sources) or "-",)
        rows.append(row)
    trainable = sum(_counts(layer, trained)[0] for layer in model.buffers.layers)
    frozen = sum(_counts(layer, trained)[1] for layer in model.buffers.layers)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    line = "-" * (sum(widths) + 2 * (len(widths) - 1))

    def format_row(row) -> str:
        cells = [f"{row[0]:{widths[0]}}", f"{row[1]:{widths[1]}}", f"{row[2]:>{widths[2]}}"]
        cells += [f"{cell:{width}}" for cell, width in zip(row[3:], widths[3:], strict=True)]
        return "  ".join(cells).rstrip()

    text = [line, format_row(rows[0]), line] + [format_row(row) for row in rows[1:]] + [line]
    shape = model.input_shape
    text += [
        f"total parameters: {trainable + frozen:,}",
        f"trainable parameters: {trainable:,}",
        f"non-trainable parameters: {frozen:,}",
        f"device: {model.device}, dtype: {model.dtype_name}, input shape: {shape}",
    ]
    return "\n".join(text)


def _is_line(model) -> bool:
    """A Sequential model needs no "connected to" column: each layer takes the one before."""
    return not any(isinstance(layer, InputLayer) for layer in model.layers)
