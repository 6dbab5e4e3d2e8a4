"""Layer configurations between Keras and netcore: each Keras class netcore has, its arguments read into a netcore
layer and written back. Only these classes are built; anything else (a ``Lambda``, a custom or unknown class) is
refused by name, and nothing in a file is executed."""

from __future__ import annotations

import re

from netcore import activations, regularizers
from netcore import layers as nn
from netcore.errors import ConfigurationError

#: Keras's activation names netcore computes the same way (Keras's leaky_relu slope is 0.2; its gelu is exact).
_ACTIVATIONS_IN = {
    "linear": activations.linear,
    "relu": activations.relu,
    "sigmoid": activations.sigmoid,
    "tanh": activations.tanh,
    "softmax": activations.softmax,
    "elu": activations.elu,
    "softplus": activations.softplus,
    "gelu": activations.gelu,
    "leaky_relu": lambda: activations.leaky_relu(0.2),
}


def keras_name(class_name: str) -> str:
    """Keras's snake case of a class name (``BatchNormalization`` -> ``batch_normalization``, ``ReLU`` ->
    ``re_lu``): the keys of its weight files."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# ----------------------------------------------------------------------------------------------- reading
def _activation(value, where: str):
    name = value if isinstance(value, str) else (value or {}).get("config", {}).get("name", value)
    if name is None:
        return activations.linear()
    if name not in _ACTIVATIONS_IN:
        raise ConfigurationError(
            f"{where}: the activation {name!r} is not one netcore computes ({', '.join(_ACTIVATIONS_IN)})"
        )
    return _ACTIVATIONS_IN[name]()


def _regularizer(value, where: str):
    if value is None:
        return None
    kind, config = value.get("class_name"), value.get("config", {})
    if kind in ("L1", "L2", "L1L2"):
        return regularizers.Regularizer(l1=float(config.get("l1", 0.0)), l2=float(config.get("l2", 0.0)))
    raise ConfigurationError(f"{where}: the regularizer {kind!r} is not one netcore has (L1, L2, L1L2)")


def _channels_last(config: dict, where: str) -> None:
    if config.get("data_format", "channels_last") not in (None, "channels_last"):
        raise ConfigurationError(f"{where}: netcore reads channels-last images only, not {config['data_format']!r}")


def _constraint(config: dict, key: str, where: str) -> None:
    if config.get(key) is not None:
        raise ConfigurationError(
            f"{where}: {key} ({config[key].get('class_name')}) is not read; netcore has MaxNorm only"
        )


def _kernel_layer(config: dict, where: str) -> dict:
    for key in ("activity_regularizer",):
        if config.get(key) is not None:
            raise ConfigurationError(f"{where}: {key} is not something netcore computes")
    _constraint(config, "bias_constraint", where)
    _constraint(config, "kernel_constraint", where)
    return dict(
        activation=_activation(config.get("activation"), where),
        use_bias=bool(config.get("use_bias", True)),
        kernel_regularizer=_regularizer(config.get("kernel_regularizer"), where),
        bias_regularizer=_regularizer(config.get("bias_regularizer"), where),
    )


def _window(config: dict, where: str, strides=1) -> dict:
    """Strides and padding (a pooling layer's strides default to its pool size: None)."""
    _channels_last(config, where)
    return dict(strides=config.get("strides") or strides, padding=str(config.get("padding", "valid")).lower())


def _recurrent(config: dict, where: str) -> dict:
    for key, allowed in (("stateful", False), ("unroll", False), ("return_state", False)):
        if bool(config.get(key, allowed)) != allowed:
            raise ConfigurationError(f"{where}: {key}={config[key]} is not provided by netcore's recurrent layers")
    for key in ("dropout", "recurrent_dropout"):
        if config.get(key, 0):
            raise ConfigurationError(f"{where}: {key} inside the cell is not provided; put Dropout between layers")
    if config.get("recurrent_activation", "sigmoid") != "sigmoid":
        raise ConfigurationError(
            f"{where}: recurrent_activation must be sigmoid, got {config['recurrent_activation']!r}"
        )
    return dict(
        units=int(config["units"]),
        activation=_activation(config.get("activation", "tanh"), where),
        use_bias=bool(config.get("use_bias", True)),
        kernel_regularizer=_regularizer(config.get("kernel_regularizer"), where),
        recurrent_regularizer=_regularizer(config.get("recurrent_regularizer"), where),
        bias_regularizer=_regularizer(config.get("bias_regularizer"), where),
        return_sequences=bool(config.get("return_sequences", False)),
        go_backwards=bool(config.get("go_backwards", False)),
    )


def _batch_norm(c: dict, where: str):
    axis = c.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, 3, 1) or not c.get("center", True) or not c.get("scale", True):
        raise ConfigurationError(
            f"{where}: batch norm over the last axis with center and scale is what netcore has (axis={axis})"
        )
    return nn.BatchNormalization(momentum=float(c.get("momentum", 0.99)), epsilon=float(c.get("epsilon", 1e-3)))


def _merge(kind):
    return lambda c, where: kind()


_READERS = {
    "Dense": lambda c, w: nn.Dense(int(c["units"]), **_kernel_layer(c, w)),
    "Conv2D": lambda c, w: _conv(c, w),
    "DepthwiseConv2D": lambda c, w: _depthwise(c, w),
    "BatchNormalization": _batch_norm,
    "Activation": lambda c, w: nn.Activation(_activation(c.get("activation"), w)),
    "ReLU": lambda c, w: nn.ReLU(
        c.get("max_value"), float(c.get("negative_slope", 0.0)), float(c.get("threshold", 0.0))
    ),
    "LeakyReLU": lambda c, w: nn.ReLU(negative_slope=float(c.get("negative_slope", c.get("alpha", 0.3)))),
    "MaxPooling2D": lambda c, w: nn.MaxPooling2D(c.get("pool_size", 2), **_window(c, w, None)),
    "AveragePooling2D": lambda c, w: nn.AveragePooling2D(c.get("pool_size", 2), **_window(c, w, None)),
    "GlobalAveragePooling2D": lambda c, w: nn.GlobalAveragePooling2D(keepdims=bool(c.get("keepdims", False))),
    "GlobalMaxPooling2D": lambda c, w: nn.GlobalMaxPooling2D(keepdims=bool(c.get("keepdims", False))),
    "GlobalAveragePooling1D": lambda c, w: nn.GlobalAveragePooling1D(keepdims=bool(c.get("keepdims", False))),
    "Flatten": lambda c, w: nn.Flatten(),
    "Reshape": lambda c, w: nn.Reshape(c["target_shape"]),
    "Dropout": lambda c, w: nn.Dropout(float(c.get("rate", 0.0))),
    "SpatialDropout2D": lambda c, w: nn.SpatialDropout2D(float(c.get("rate", 0.0))),
    "GaussianNoise": lambda c, w: nn.GaussianNoise(float(c.get("stddev", 0.0))),
    "ZeroPadding2D": lambda c, w: nn.ZeroPadding2D(c.get("padding", 1)),
    "Rescaling": lambda c, w: nn.Rescaling(float(c.get("scale", 1.0)), float(c.get("offset", 0.0))),
    "Masking": lambda c, w: nn.Masking(float(c.get("mask_value", 0.0))),
    "Embedding": lambda c, w: nn.Embedding(
        int(c["input_dim"]), int(c["output_dim"]), mask_zero=bool(c.get("mask_zero", False))
    ),
    "SimpleRNN": lambda c, w: nn.SimpleRNN(**_recurrent(c, w)),
    "LSTM": lambda c, w: nn.LSTM(unit_forget_bias=bool(c.get("unit_forget_bias", True)), **_recurrent(c, w)),
    "GRU": lambda c, w: _gru(c, w),
    "Add": _merge(nn.Add),
    "Subtract": _merge(nn.Subtract),
    "Multiply": _merge(nn.Multiply),
    "Average": _merge(nn.Average),
    "Maximum": _merge(nn.Maximum),
    "Minimum": _merge(nn.Minimum),
    "Concatenate": lambda c, w: nn.Concatenate(axis=int(c.get("axis", -1))),
}  # fmt: skip


def _conv(c: dict, where: str):
    if int(c.get("groups", 1)) != 1:
        raise ConfigurationError(
            f"{where}: grouped convolutions (groups={c['groups']}) are not provided; DepthwiseConv2D is"
        )
    return nn.Conv2D(int(c["filters"]), c["kernel_size"], dilation_rate=c.get("dilation_rate", 1),
                     **_window(c, where), **_kernel_layer(c, where))  # fmt: skip


def _depthwise(c: dict, where: str):
    options = _kernel_layer({**c, "kernel_regularizer": c.get("depthwise_regularizer"),
                             "kernel_constraint": c.get("depthwise_constraint")}, where)  # fmt: skip
    return nn.DepthwiseConv2D(
        c["kernel_size"],
        depth_multiplier=int(c.get("depth_multiplier", 1)),
        dilation_rate=c.get("dilation_rate", 1),
        activation=options["activation"],
        use_bias=options["use_bias"],
        depthwise_regularizer=options["kernel_regularizer"],
        bias_regularizer=options["bias_regularizer"],
        **_window(c, where),
    )


def _gru(c: dict, where: str):
    if not c.get("reset_after", True):
        raise ConfigurationError(
            f"{where}: GRU reset_after=False (Keras 2's default) is not provided; Keras 3's True is"
        )
    return nn.GRU(**_recurrent(c, where))


def layer_from_keras(class_name: str, config: dict, module: str | None = None):
    """A netcore layer from a Keras layer's class name and configuration (nested wrappers included)."""
    where = f"layer {config.get('name', class_name)!r} ({class_name})"
    if class_name == "Lambda":
        raise ConfigurationError(f"{where}: a Lambda layer holds Python code, and netcore runs no code from files")
    if module is not None and not str(module).startswith("keras"):
        raise ConfigurationError(
            f"{where}: {module}.{class_name} is a custom class; netcore builds Keras's own layers only"
        )
    if class_name == "Bidirectional":
        inner = config["layer"]
        if inner.get("class_name") not in ("SimpleRNN", "LSTM", "GRU"):
            raise ConfigurationError(f"{where}: netcore's Bidirectional wraps SimpleRNN, LSTM or GRU")
        wrapped = layer_from_keras(inner["class_name"], inner["config"], inner.get("module"))
        layer = nn.Bidirectional(wrapped, merge_mode=config.get("merge_mode", "concat"))
    elif class_name in _READERS:
        layer = _READERS[class_name](config, where)
    else:
        known = ", ".join(sorted([*_READERS, "Bidirectional", "InputLayer", "Sequential", "Functional"]))
        raise ConfigurationError(f"{where}: netcore has no such layer; it reads {known}")
    layer.name = config.get("name") or layer.name
    layer.auto_named = False
    layer.trainable = bool(config.get("trainable", True))
    return layer


# ----------------------------------------------------------------------------------------------- writing
_ACTIVATIONS_OUT = {"linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "gelu"}


def _activation_out(act, where: str) -> str:
    if act.kind in _ACTIVATIONS_OUT or (act.kind == "elu" and act.alpha == 1.0):
        return act.kind
    if act.kind == "leaky_relu" and act.alpha == 0.2:
        return "leaky_relu"
    raise ConfigurationError(
        f"{where}: Keras has no activation string for {act.kind}(alpha={act.alpha}); use a ReLU layer"
    )


def _regularizer_out(reg):
    if reg is None:
        return None
    return {"module": "keras.regularizers", "class_name": "L1L2", "config": {"l1": reg.l1, "l2": reg.l2},
            "registered_name": None}  # fmt: skip


def _common(layer) -> dict:
    return {"name": layer.name, "trainable": layer.trainable}


def _kernel_out(layer, where: str) -> dict:
    return {
        "activation": _activation_out(layer.activation, where),
        "use_bias": layer.use_bias,
        "kernel_regularizer": _regularizer_out(layer.kernel_regularizer),
        "bias_regularizer": _regularizer_out(layer.bias_regularizer),
    }


def _recurrent_out(layer, where: str) -> dict:
    return {
        "units": layer.units,
        "activation": _activation_out(layer.activation, where),
        "use_bias": layer.use_bias,
        "return_sequences": layer.return_sequences,
        "go_backwards": layer.go_backwards,
        "kernel_regularizer": _regularizer_out(layer.kernel_regularizer),
        "recurrent_regularizer": _regularizer_out(layer.recurrent_regularizer),
        "bias_regularizer": _regularizer_out(layer.bias_regularizer),
    }


def keras_class(layer) -> str:
    """The Keras class a netcore layer is written as (BatchNorm, whatever its convention, is BatchNormalization)."""
    if isinstance(layer, nn.BatchNorm):
        return "BatchNormalization"
    return type(layer).__name__


def layer_to_keras(layer) -> tuple[str, dict]:
    """(Keras class name, Keras configuration) of a netcore layer; a layer Keras cannot express is refused."""
    where = f"{layer.name} ({type(layer).__name__})"
    c = _common(layer)
    if isinstance(layer, nn.DepthwiseConv2D):
        kernel = _kernel_out(layer, where)
        c.update(
            kernel_size=list(layer.kernel_size),
            strides=list(layer.strides),
            padding=layer.padding,
            depth_multiplier=layer.depth_multiplier,
            dilation_rate=list(layer.dilation_rate),
            activation=kernel["activation"],
            use_bias=layer.use_bias,
            depthwise_regularizer=kernel["kernel_regularizer"],
            bias_regularizer=kernel["bias_regularizer"],
        )
    elif isinstance(layer, nn.Conv2D):
        geometry = {"kernel_size": list(layer.kernel_size), "strides": list(layer.strides), "padding": layer.padding}
        c.update(
            filters=layer.filters, dilation_rate=list(layer.dilation_rate), **geometry, **_kernel_out(layer, where)
        )
    elif isinstance(layer, nn.Dense):
        c.update(units=layer.units, **_kernel_out(layer, where))
    elif isinstance(layer, nn.BatchNorm):
        # Keras's momentum is the old value's weight; a PyTorch-convention layer's is the new batch's.
        momentum = layer.momentum if layer.convention == "keras" else 1 - layer.momentum
        if layer.convention == "torch":
            raise ConfigurationError(
                f"{where}: PyTorch's batch norm keeps an unbiased running variance, which Keras's does not; "
                "use BatchNormalization to write Keras files"
            )
        c.update(momentum=momentum, epsilon=layer.eps)
    elif isinstance(layer, nn.Activation):
        c.update(activation=_activation_out(layer.activation, where))
    elif isinstance(layer, nn.ReLU):
        c.update(max_value=layer.max_value, negative_slope=layer.negative_slope, threshold=layer.threshold)
    elif isinstance(layer, (nn.MaxPooling2D, nn.AveragePooling2D)):
        c.update(pool_size=list(layer.pool_size), strides=list(layer.strides), padding=layer.padding)
    elif isinstance(layer, (nn.GlobalAveragePooling2D, nn.GlobalMaxPooling2D, nn.GlobalAveragePooling1D)):
        c.update(keepdims=layer.keepdims)
    elif isinstance(layer, nn.Reshape):
        c.update(target_shape=list(layer.output_shape))
    elif isinstance(layer, (nn.Dropout, nn.SpatialDropout2D)):
        c.update(rate=layer.rate)
    elif isinstance(layer, nn.GaussianNoise):
        c.update(stddev=layer.stddev)
    elif isinstance(layer, nn.ZeroPadding2D):
        c.update(padding=[list(pair) for pair in layer.padding])
    elif isinstance(layer, nn.Rescaling):
        c.update(scale=layer.scale, offset=layer.offset)
    elif isinstance(layer, nn.Masking):
        c.update(mask_value=layer.mask_value)
    elif isinstance(layer, nn.Embedding):
        c.update(input_dim=layer.input_dim, output_dim=layer.output_dim, mask_zero=layer.mask_zero)
    elif isinstance(layer, nn.LSTM):
        c.update(unit_forget_bias=layer.unit_forget_bias, **_recurrent_out(layer, where))
    elif isinstance(layer, nn.GRU):
        c.update(reset_after=True, **_recurrent_out(layer, where))
    elif isinstance(layer, nn.SimpleRNN):
        c.update(**_recurrent_out(layer, where))
    elif isinstance(layer, nn.Bidirectional):
        kind, inner = layer_to_keras(layer.forward_layer)
        wrapped = {"module": "keras.layers", "class_name": kind, "config": inner, "registered_name": None}
        c.update(merge_mode=layer.merge_mode, layer=wrapped)
    elif isinstance(layer, nn.Concatenate):
        c.update(axis=layer.axis)
    elif not isinstance(layer, (nn.Flatten, nn.Add, nn.Subtract, nn.Multiply, nn.Average, nn.Maximum, nn.Minimum)):
        raise ConfigurationError(
            f"{where}: Keras has no such layer (netcore's own); it cannot be written as a Keras file"
        )
    return keras_class(layer), c
