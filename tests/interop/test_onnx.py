"""ONNX export, checked by ONNX Runtime: every exportable layer, float32 and float64, batches of 1, 7 and all."""

from __future__ import annotations

import json

import numpy as np
import pytest

import netcore
from netcore.layers import (
    GRU,
    LSTM,
    Activation,
    AveragePooling2D,
    BatchNorm,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GaussianNoise,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Masking,
    MaxPooling2D,
    RandomFlip,
    RandomRotation,
    Reshape,
    SimpleRNN,
    SpatialDropout2D,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ARCHITECTURES = {
    "dense": (lambda: [Dense(16, "relu"), BatchNorm(), Dropout(0.3), Dense(3, "softmax")], (5,)),
    "activations": (
        lambda: (
            [Dense(8, a) for a in ("tanh", "sigmoid", "leaky_relu", "elu", "softplus", "gelu", "gelu_tanh")]
            + [GaussianNoise(0.1), Dense(3), Activation("softmax")]
        ),
        (5,),
    ),
    "binary": (lambda: [Dense(8, "relu"), Dense(1, "sigmoid")], (4,)),
    "rescaling": (lambda: [netcore.layers.Rescaling(1 / 255, offset=-0.5), Dense(3, "softmax")], (4,)),
    "mobilenet pieces": (
        lambda: [
            netcore.layers.ZeroPadding2D(((1, 0), (0, 2))),
            netcore.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, use_bias=False),
            BatchNorm(),
            netcore.layers.ReLU(6.0),
            netcore.layers.DepthwiseConv2D((2, 3), padding="same", activation="tanh"),
            netcore.layers.ReLU(0.8, negative_slope=0.1, threshold=-0.3),
            Flatten(),
            Dense(3, "softmax"),
        ],
        (7, 6, 3),
    ),
    "cnn": (
        lambda: [
            RandomFlip(),
            RandomRotation(0.1),
            Conv2D(4, 3, padding="same", activation="relu"),
            BatchNorm(),
            MaxPooling2D(2),
            SpatialDropout2D(0.2),
            Conv2D(6, 2, strides=2, dilation_rate=1),
            AveragePooling2D(2, padding="same"),
            Flatten(),
            Dense(3, "softmax"),
        ],
        (9, 10, 2),
    ),
    "global pooling": (
        lambda: [
            Conv2D(4, 3, padding="same", dilation_rate=2, activation="relu"),
            GlobalMaxPooling2D(),
            Reshape((2, 2)),
            Flatten(),
            Dense(3, "softmax"),
        ],  # fmt: skip
        (7, 7, 1),
    ),
    "global average": (
        lambda: [Conv2D(3, 3), GlobalAveragePooling2D(keepdims=True), Flatten(), Dense(3, "softmax")],
        (6, 6, 2),
    ),  # fmt: skip
    "recurrent": (
        lambda: [LSTM(6, return_sequences=True), GRU(5, return_sequences=True), SimpleRNN(4), Dense(3, "softmax")],
        (7, 4),
    ),  # fmt: skip
    "bidirectional": (
        lambda: [
            Bidirectional(GRU(4, return_sequences=True), merge_mode="mul"),
            Bidirectional(SimpleRNN(3, return_sequences=True), merge_mode="sum"),
            Bidirectional(LSTM(3), merge_mode="ave"),
            Dense(3, "softmax"),
        ],  # fmt: skip
        (6, 2),
    ),
    "backwards": (
        lambda: [LSTM(4, go_backwards=True, return_sequences=True), GlobalAveragePooling1D(), Dense(3, "softmax")],
        (6, 2),
    ),  # fmt: skip
    "reshaped rows": (
        lambda: [Reshape((4, 5)), SimpleRNN(4, activation="relu", use_bias=False), Dense(3, "softmax")],
        (20,),
    ),  # fmt: skip
}


def trained(name: str, dtype: str = "float32", rows: int = 40):
    make, shape = ARCHITECTURES[name]
    rng = np.random.default_rng(0)
    model = netcore.Sequential(make(), input_shape=shape, dtype=dtype, seed=0)
    classes = model.output_shape[-1]
    loss = "binary_cross_entropy" if classes == 1 else "cross_entropy"
    model.compile("adam", loss)
    X = rng.standard_normal((rows, *shape)).astype(dtype)
    model.fit(X, rng.integers(0, max(classes, 2), rows), epochs=3, batch_size=8, verbose=0)
    return model, X


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_onnx_runtime_computes_what_predict_does(tmp_path, name):
    model, X = trained(name)
    path = tmp_path / "m.onnx"
    assert model.export(path, format="onnx") == str(path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for rows in (1, 7, len(X)):
        np.testing.assert_allclose(run_onnx(path, X[:rows]), model.predict(X[:rows]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["dense", "binary"])
def test_a_float64_model_exports_in_float64(tmp_path, name):
    """(ONNX Runtime's CPU kernels for convolutions, recurrent cells and most activations are float32 only.)"""
    model, X = trained(name, "float64")
    path = model.export(tmp_path / "m.onnx")
    assert onnx.load(path).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    np.testing.assert_allclose(run_onnx(path, X), model.predict(X), rtol=0, atol=1e-12)


def test_a_layer_that_cannot_be_exported_is_named_and_nothing_is_written(tmp_path):
    model = netcore.Sequential([Masking(0.0), LSTM(3), Dense(2, "softmax")], input_shape=(5, 2))
    path = tmp_path / "m.onnx"
    with pytest.raises(netcore.ConfigurationError, match=r"masking \(Masking\) cannot be exported"):
        model.export(path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    model, _ = trained("dense")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"the previous export")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        model.export(path)
    assert path.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_bad_export_arguments_are_refused():
    model, _ = trained("dense")
    with pytest.raises(netcore.ConfigurationError, match="format"):
        model.export("m.tflite", format="tflite")
    with pytest.raises(netcore.ConfigurationError, match="opset"):
        model.export("m.onnx", opset=9)


def test_the_command_line_exports_a_saved_model(tmp_path, capsys):
    from netcore.cli import main

    checkpoint, exported = tmp_path / "m.ncz", tmp_path / "m.onnx"
    assert main(["train", "--dataset", "digits", "--epochs", "3", "--save", str(checkpoint), "--json"]) == 0
    capsys.readouterr()
    assert main(["export", str(checkpoint), "--output", str(exported), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["output"] == str(exported) and report["opset"] == 17
    model = netcore.load(checkpoint)
    X = netcore.datasets.load("digits").X_test
    np.testing.assert_allclose(run_onnx(exported, X), model.predict(X), rtol=0, atol=1e-5)


def _graph_models():
    """A residual CNN with batch norm and a strided 1x1 projection; a two-input, two-output model with every
    merge; a nested model called twice."""
    image = netcore.Input((8, 8, 2))
    h = Activation("relu")(BatchNorm()(Conv2D(4, 3, padding="same")(image)))
    h = Conv2D(4, 3, strides=2, padding="same")(h)
    h = netcore.layers.Add()([h, Conv2D(4, 1, strides=2)(image)])
    residual = netcore.Model(image, Dense(3, "softmax")(Flatten()(Activation("relu")(h))), seed=0)

    a, b = netcore.Input((5,), name="a"), netcore.Input((5,), name="b")
    ha, hb = Dense(4, "tanh")(a), Dense(4, "tanh")(b)
    merged = [layer()([ha, hb]) for layer in (netcore.layers.Subtract, netcore.layers.Multiply)]
    merged += [layer()([ha, hb, ha]) for layer in (netcore.layers.Average, netcore.layers.Maximum)]
    merged.append(netcore.layers.Minimum()([ha, hb]))
    joined = netcore.layers.Concatenate()(merged)
    two = netcore.Model([a, b], [Dense(3, "softmax", name="cls")(joined), Dense(2, name="box")(ha)], seed=0)

    inner_input = netcore.Input((5,))
    inner = netcore.Model(inner_input, Dense(4, "tanh")(inner_input))
    c, d = netcore.Input((5,), name="c"), netcore.Input((5,), name="d")
    nested = netcore.Model([c, d], Dense(2, "softmax")(netcore.layers.Add()([inner(c), inner(d)])), seed=0)
    return {"residual cnn": residual, "two inputs and outputs": two, "nested twice": nested}


@pytest.mark.parametrize("name", ["residual cnn", "two inputs and outputs", "nested twice"])
def test_graph_models_export_with_their_inputs_and_outputs_named(tmp_path, name):
    model = _graph_models()[name]
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((20, *shape)).astype("float32") for shape in model.input_shapes]
    y = [rng.integers(0, 2, 20) if shape[-1] > 2 else rng.integers(0, 2, 20) for shape in model.output_shapes]
    if len(y) == 2:
        y[1] = rng.standard_normal((20, 2))
    model.compile("adam", ["cross_entropy"] * (len(y) - 1) + (["mse"] if len(y) > 1 else []) or "cross_entropy")
    model.fit(X, y, epochs=2, batch_size=5, verbose=0)
    path = model.export(tmp_path / "g.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = [i.name for i in session.get_inputs()]
    assert feeds == (["input"] if len(X) == 1 else model.input_names)
    expected = model.predict(X if len(X) > 1 else X[0])
    expected = expected if isinstance(expected, list) else [expected]
    for rows in (1, 7, 20):
        got = session.run(None, {feed: x[:rows] for feed, x in zip(feeds, X, strict=True)})
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e[:rows], rtol=0, atol=1e-5)
