"""Export to ONNX (the optional extra ``onnx``): ``model.export("m.onnx", format="onnx")`` or ``netcore export m.ncz
--output m.onnx``. The graph computes what ``predict`` does: probabilities after a softmax or sigmoid, dropout, noise
and augmentation removed, batch norm with its running statistics (ONNX's ``BatchNormalization``), images kept
channels-last between layers as netcore keeps them (each convolution and pooling transposes to ONNX's NCHW and
back; ONNX Runtime folds the pairs), recurrent layers as ONNX's ``RNN``, ``LSTM`` and ``GRU`` (time-major inside,
as ONNX Runtime runs them), merge layers as ``Sum``, ``Sub``, ``Mul``, ``Mean``, ``Max``, ``Min`` and ``Concat``.
A model with one input and one output names them ``input`` and ``output``; several are named as the model names
them (its ``Input`` names and output names). The batch axis is dynamic; the dtype is the model's.

Built with the ``onnx`` package's helpers and checked by ``onnx.checker`` before anything is written; the file is
written beside its target and renamed, so a failed export leaves no partial file.
"""

from __future__ import annotations

import math
import os

import numpy as np

from netcore import layers as nn
from netcore.atomic import replacing
from netcore.errors import BackendUnavailableError, ConfigurationError

DEFAULT_OPSET = 17
#: Layers that do nothing at inference.
_IDENTITY = (
    nn.Dropout,
    nn.GaussianNoise,
    nn.SpatialDropout2D,
    nn.RandomFlip,
    nn.RandomTranslation,
    nn.RandomRotation,
    nn.RandomZoom,
    nn.RandomBrightness,
    nn.RandomContrast,
    nn.RandomErasing,
)
_RNN_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "softplus": "Softplus", "elu": "Elu"}


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError(
            f"ONNX export needs the onnx package ({exc}); install it with: pip install 'netcore-nn[onnx]'"
        ) from None
    return onnx


class _Graph:
    """The nodes and weights of the graph being built; every value gets a fresh name."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype = onnx, np.dtype(dtype)
        self.nodes, self.weights, self._count = [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "w", dtype=None) -> str:
        name = self.name(hint)
        value = np.ascontiguousarray(np.asarray(array, dtype=dtype or self.dtype))
        self.weights.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, kind: str, *inputs: str, outputs: int = 1, **attributes):
        names = [self.name(kind.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(kind, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names


# ----------------------------------------------------------------------------------------------- activations
def _activation(g: _Graph, act, x: str) -> str:
    kind = act.kind
    if kind == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
    if kind in simple:
        return g.op(simple[kind], x)
    if kind == "softmax":
        return g.op("Softmax", x, axis=-1)
    if kind == "leaky_relu":
        return g.op("LeakyRelu", x, alpha=act.alpha)
    if kind == "elu":
        return g.op("Elu", x, alpha=act.alpha)
    if kind == "step":
        return g.op("Cast", g.op("GreaterOrEqual", x, g.const(0.0, "zero")), to=_tensor_type(g))
    half, one = g.const(0.5, "half"), g.const(1.0, "one")
    if kind == "gelu":  # x Phi(x) = x (1 + erf(x / sqrt 2)) / 2
        inner = g.op("Erf", g.op("Mul", x, g.const(1 / math.sqrt(2), "c")))
    else:  # gelu_tanh: x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2
        cube = g.op("Mul", g.op("Mul", x, x), x)
        inner = g.op("Add", x, g.op("Mul", cube, g.const(0.044715, "c")))
        inner = g.op("Tanh", g.op("Mul", inner, g.const(math.sqrt(2 / math.pi), "c")))
    return g.op("Mul", g.op("Mul", x, half), g.op("Add", inner, one))


def _tensor_type(g: _Graph) -> int:
    return g.onnx.helper.np_dtype_to_tensor_dtype(g.dtype)


# ----------------------------------------------------------------------------------------------- layers
def _values(layer, name: str) -> np.ndarray:
    return np.array(layer.backend.to_numpy(layer.params[name]))


def _state(layer, name: str) -> np.ndarray:
    return np.array(layer.backend.to_numpy(layer.state[name]))


def _dense(g, layer, x):
    w = g.const(_values(layer, "W"), "kernel")
    bias = _values(layer, "b") if layer.use_bias else None
    if len(layer.input_shape) == 1:
        args = (x, w) if bias is None else (x, w, g.const(bias, "bias"))
        y = g.op("Gemm", *args)
    else:  # applied to every step or pixel
        y = g.op("MatMul", x, w)
        if bias is not None:
            y = g.op("Add", y, g.const(bias, "bias"))
    return _activation(g, layer.activation, y)


def _channels_first(g, x):
    return g.op("Transpose", x, perm=[0, 3, 1, 2])


def _channels_last(g, x):
    return g.op("Transpose", x, perm=[0, 2, 3, 1])


def _pads(window) -> list[int]:
    """ONNX's [top, left, bottom, right] from netcore's window (padding split with the smaller half first)."""
    span_h, span_w = (window.kh - 1) * window.dh + 1, (window.kw - 1) * window.dw + 1
    total_h = max((window.out_h - 1) * window.sh + span_h - window.in_h, 0)
    total_w = max((window.out_w - 1) * window.sw + span_w - window.in_w, 0)
    return [window.pad_top, window.pad_left, total_h - window.pad_top, total_w - window.pad_left]


def _conv(g, layer, x):
    w = g.const(_values(layer, "W").transpose(3, 2, 0, 1), "kernel")  # (kh, kw, in, out) -> (out, in, kh, kw)
    inputs = [_channels_first(g, x), w] + ([g.const(_values(layer, "b"), "bias")] if layer.use_bias else [])
    window = layer.window
    y = g.op(
        "Conv",
        *inputs,
        kernel_shape=[window.kh, window.kw],
        strides=[window.sh, window.sw],
        dilations=[window.dh, window.dw],
        pads=_pads(window),
    )
    return _activation(g, layer.activation, _channels_last(g, y))


def _depthwise(g, layer, x):
    kh, kw = layer.kernel_size
    kernel = _values(layer, "W").transpose(2, 3, 0, 1).reshape(layer.filters, 1, kh, kw)  # (c * m, 1, kh, kw)
    inputs = [_channels_first(g, x), g.const(kernel, "kernel")]
    inputs += [g.const(_values(layer, "b"), "bias")] if layer.use_bias else []
    window = layer.window
    y = g.op(
        "Conv",
        *inputs,
        kernel_shape=[kh, kw],
        strides=[window.sh, window.sw],
        dilations=[window.dh, window.dw],
        pads=_pads(window),
        group=layer.n_in,
    )
    return _activation(g, layer.activation, _channels_last(g, y))


def _zero_padding(g, layer, x):
    (top, bottom), (left, right) = layer.padding
    return g.op("Pad", x, g.ints([0, top, left, 0, 0, bottom, right, 0]))


def _relu(g, layer, x):
    """Keras's ReLU: x above the threshold, the slope below it, capped."""
    if layer.threshold == 0:
        y = g.op("LeakyRelu", x, alpha=layer.negative_slope) if layer.negative_slope else g.op("Relu", x)
    else:
        below = g.op("Mul", g.op("Sub", x, g.const(layer.threshold)), g.const(layer.negative_slope))
        y = g.op("Where", g.op("GreaterOrEqual", x, g.const(layer.threshold)), x, below)
    return y if layer.max_value is None else g.op("Min", y, g.const(layer.max_value))


def _pool(g, layer, x):
    window = layer.window
    options = {"kernel_shape": [window.kh, window.kw], "strides": [window.sh, window.sw], "pads": _pads(window)}
    if isinstance(layer, nn.AveragePooling2D):
        options["count_include_pad"] = 0
    y = g.op("MaxPool" if isinstance(layer, nn.MaxPooling2D) else "AveragePool", _channels_first(g, x), **options)
    return _channels_last(g, y)


def _global_pool(g, layer, x):
    kind = "ReduceMax" if isinstance(layer, nn.GlobalMaxPooling2D) else "ReduceMean"
    return g.op(kind, x, axes=[1, 2], keepdims=int(layer.keepdims))


def _batchnorm(g, layer, x):
    stats = [g.const(v) for v in (_values(layer, "gamma"), _values(layer, "beta"))]
    stats += [g.const(_state(layer, "running_mean")), g.const(_state(layer, "running_var"))]
    rank = len(layer.input_shape) + 1
    if rank == 2:
        return g.op("BatchNormalization", x, *stats, epsilon=layer.eps)
    to_first = [0, rank - 1, *range(1, rank - 1)]  # ONNX normalises axis 1: move the features there and back
    back = [0, *range(2, rank), 1]
    y = g.op("BatchNormalization", g.op("Transpose", x, perm=to_first), *stats, epsilon=layer.eps)
    return g.op("Transpose", y, perm=back)


def _recurrent_weights(layer, cell):
    """ONNX's W (blocks, F), R (blocks, U) and B (2 blocks) of one direction, blocks reordered where ONNX's gate
    order differs from Keras's (LSTM: Keras i f c o, ONNX i o f c)."""
    kernel, recurrent = _values(cell, "kernel"), _values(cell, "recurrent_kernel")
    width = kernel.shape[1]
    bias = _values(cell, "bias") if cell.use_bias else np.zeros(width if not isinstance(cell, nn.GRU) else (2, width))
    if isinstance(cell, nn.GRU):
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, np.zeros(width)
    order = [0, 3, 1, 2] if isinstance(cell, nn.LSTM) else list(range(width // cell.units))
    blocks = [slice(k * cell.units, (k + 1) * cell.units) for k in order]
    pick = np.concatenate  # blocks in ONNX's order
    W = pick([kernel[:, s].T for s in blocks])
    R = pick([recurrent[:, s].T for s in blocks])
    B = pick([pick([input_bias[s] for s in blocks]), pick([recurrent_bias[s] for s in blocks])])
    return W, R, B


def _recurrent_node(g, cells, x, direction: str):
    first = cells[0]
    weights = [_recurrent_weights(first, cell) for cell in cells]
    W, R, B = (g.const(np.stack([w[i] for w in weights]), name) for i, name in enumerate(("W", "R", "B")))
    options = {"hidden_size": first.units, "direction": direction}
    if isinstance(first, nn.LSTM):
        kind = "LSTM"
    elif isinstance(first, nn.GRU):
        kind, options["linear_before_reset"] = "GRU", 1
    else:
        kind = "RNN"
        name = first.activation.kind
        if name == "linear":
            options.update(activations=["Affine"] * len(cells), activation_alpha=[1.0] * len(cells),
                           activation_beta=[0.0] * len(cells))  # fmt: skip
        elif name in _RNN_ACTIVATIONS:
            options["activations"] = [_RNN_ACTIVATIONS[name]] * len(cells)
            if name == "elu":
                options["activation_alpha"] = [first.activation.alpha] * len(cells)
        else:
            raise ConfigurationError(f"{first.name}: ONNX's RNN has no {name!r} activation")
    # ONNX Runtime runs the time-major layout only: Y (time, directions, batch, units), Y_h (directions, batch,
    # units); both are returned batch-first, as (batch, time, directions, units) and (batch, directions, units).
    time_major = g.op("Transpose", x, perm=[1, 0, 2])
    every, last = g.op(kind, time_major, W, R, B, outputs=2 if kind != "LSTM" else 3, **options)[:2]
    return g.op("Transpose", every, perm=[2, 0, 1, 3]), g.op("Transpose", last, perm=[1, 0, 2])


def _reverse_time(g, y):
    return g.op("Slice", y, g.ints([-1]), g.ints([-(2**63)]), g.ints([1]), g.ints([-1]))


def _recurrent(g, layer, x):
    every, last = _recurrent_node(g, [layer], x, "reverse" if layer.go_backwards else "forward")
    if not layer.return_sequences:
        return g.op("Reshape", last, g.ints([0, -1]))
    y = g.op("Reshape", every, g.ints([0, 0, -1]))
    return _reverse_time(g, y) if layer.go_backwards else y  # netcore returns the steps in the order it read them


def _bidirectional(g, layer, x):
    if layer.forward_layer.go_backwards:
        raise ConfigurationError(f"{layer.name}: a Bidirectional around a go_backwards layer cannot be exported")
    every, last = _recurrent_node(g, [layer.forward_layer, layer.backward_layer], x, "bidirectional")
    both, axis = (every, 2) if layer.sequences else (last, 1)
    if layer.merge_mode == "concat":
        return g.op("Reshape", both, g.ints([0, 0, -1] if layer.sequences else [0, -1]))
    ahead, behind = (g.op("Slice", both, g.ints([k]), g.ints([k + 1]), g.ints([axis])) for k in (0, 1))
    merged = g.op("Mul" if layer.merge_mode == "mul" else "Add", ahead, behind)
    if layer.merge_mode == "ave":
        merged = g.op("Mul", merged, g.const(0.5, "half"))
    return g.op("Reshape", merged, g.ints([0, 0, -1] if layer.sequences else [0, -1]))


def _reshape(g, layer, x):
    return g.op("Reshape", x, g.ints([0, *layer.output_shape]))


def _merge(g, layer, xs):
    """Merge layers as ONNX's variadic Sum, Mean, Max and Min, or chains of Sub and Mul (all broadcast as Keras)."""
    variadic = {nn.Add: "Sum", nn.Average: "Mean", nn.Maximum: "Max", nn.Minimum: "Min"}
    for kind, op in variadic.items():
        if isinstance(layer, kind):
            return g.op(op, *xs)
    if isinstance(layer, nn.Concatenate):
        return g.op("Concat", *xs, axis=layer.sample_axis + 1)
    op = "Sub" if isinstance(layer, nn.Subtract) else "Mul"
    y = xs[0]
    for x in xs[1:]:
        y = g.op(op, y, x)
    return y


_EXPORTERS = [
    (nn.Dense, _dense),
    (nn.Activation, lambda g, layer, x: _activation(g, layer.activation, x)),
    (nn.BatchNorm, _batchnorm),
    (nn.DepthwiseConv2D, _depthwise),  # before Conv2D, which it subclasses
    (nn.Conv2D, _conv),
    (nn.ZeroPadding2D, _zero_padding),
    (nn.ReLU, _relu),
    ((nn.MaxPooling2D, nn.AveragePooling2D), _pool),
    ((nn.GlobalAveragePooling2D, nn.GlobalMaxPooling2D), _global_pool),
    (nn.Flatten, lambda g, layer, x: g.op("Flatten", x, axis=1)),
    (nn.Reshape, _reshape),
    ((nn.SimpleRNN, nn.LSTM, nn.GRU), _recurrent),
    (nn.Bidirectional, _bidirectional),
    (nn.GlobalAveragePooling1D, lambda g, layer, x: g.op("ReduceMean", x, axes=[1], keepdims=int(layer.keepdims))),
    ((nn.Add, nn.Subtract, nn.Multiply, nn.Average, nn.Maximum, nn.Minimum, nn.Concatenate), _merge),
    (nn.Rescaling, lambda g, layer, x: g.op("Add", g.op("Mul", x, g.const(layer.scale)), g.const(layer.offset))),
]


def _exporter(layer):
    if isinstance(layer, _IDENTITY):
        return lambda g, layer, x: x
    if isinstance(layer, nn.Masking):
        raise ConfigurationError(
            f"{layer.name} (Masking) cannot be exported: ONNX's recurrent operators take sequence lengths, not masks"
        )
    for kinds, export in _EXPORTERS:
        if isinstance(layer, kinds):
            return export
    raise ConfigurationError(f"{layer.name} ({type(layer).__name__}) cannot be exported to ONNX")


# ----------------------------------------------------------------------------------------------- the model
def to_onnx(model, opset: int = DEFAULT_OPSET):
    """The model as an ``onnx.ModelProto`` (checked); nothing is written."""
    onnx = _onnx()
    model._require_built()
    model._claim()
    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ConfigurationError(f"opset must be an integer >= {DEFAULT_OPSET}, got {opset!r}")
    steps = model.executor.steps
    exporters = [_exporter(step.runner) for step in steps]  # every layer checked before any is built
    g = _Graph(onnx, model.dtype_name)
    element = _tensor_type(g)
    # One input and one output are called "input" and "output"; several are called by their names.
    input_names = ["input"] if len(model.inputs) == 1 else model.input_names
    output_names = ["output"] if len(model.outputs) == 1 else model.output_names
    values = dict(enumerate(input_names))
    for step, export in zip(steps, exporters, strict=True):
        x = [values[i] for i in step.inputs] if step.many else values[step.inputs[0]]
        values[step.output] = export(g, step.runner, x)
    for name, slot in zip(output_names, model.executor.output_slots, strict=True):
        g.nodes.append(onnx.helper.make_node("Identity", [values[slot]], [name]))
    inputs = [
        onnx.helper.make_tensor_value_info(name, element, ["batch", *shape])
        for name, shape in zip(input_names, model.input_shapes, strict=True)
    ]
    outputs = [
        onnx.helper.make_tensor_value_info(name, element, ["batch", *shape])
        for name, shape in zip(output_names, model.output_shapes, strict=True)
    ]
    graph = onnx.helper.make_graph(g.nodes, "netcore", inputs, outputs, g.weights)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="netcore")
    proto.ir_version = min(proto.ir_version, 8)  # readable by the ONNX Runtimes of the last years
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, opset: int = DEFAULT_OPSET) -> str:
    """Write the model to ``path`` as ONNX; returns the path. Nothing is written if the model cannot be exported."""
    proto = to_onnx(model, opset)
    path = os.fspath(path)
    with replacing(path, ".onnx") as temporary, open(temporary, "wb") as handle:
        handle.write(proto.SerializeToString())
    return path
