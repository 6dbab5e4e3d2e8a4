"""Keras 3 (on its PyTorch backend) as the oracle for Keras files: networks built in Keras with weights=None
(nothing is downloaded), saved in each format, loaded into netcore and predicted alike; netcore's .keras files
loaded by Keras; and every refusal (code, custom classes, broken files) with the model left as it was."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras (the test oracle for its files) is not installed")
h5py = pytest.importorskip("h5py")
if keras.backend.backend() != "torch":
    pytest.skip("the Keras oracle runs on its PyTorch backend (KERAS_BACKEND=torch)", allow_module_level=True)

import netcore  # noqa: E402
from netcore import applications  # noqa: E402
from netcore.models import Model, Sequential, load_model  # noqa: E402

RTOL = 1e-4  # float32 through dozens of layers
#: Keras's PyTorch backend hands NumPy arrays without the copy keyword; not netcore's to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def legacy_weights(model, path):
    """The layout of the keras.applications weight files (layer_names / weight_names)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    scale = max(float(np.abs(want).max()), 1e-6)
    assert float(np.abs(got - want).max()) <= RTOL * scale, float(np.abs(got - want).max()) / scale


def images(rows=3, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (rows, size, size, 3)).astype("float32")


NETWORKS = {
    "VGG16": (keras.applications.VGG16, applications.VGG16, {}),
    "VGG19": (keras.applications.VGG19, applications.VGG19, {}),
    "ResNet50": (keras.applications.ResNet50, applications.ResNet50, {}),
    "MobileNetV2": (keras.applications.MobileNetV2, applications.MobileNetV2, {"alpha": 0.35}),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_applications_read_kerass_weight_files_and_predict_alike(tmp_path, name):
    build_keras, build_netcore, options = NETWORKS[name]
    reference = build_keras(weights=None, include_top=False, input_shape=(32, 32, 3), **options)
    X = images()
    expected = reference.predict(X, verbose=0)
    for path in (reference.save_weights(str(tmp_path / "w.weights.h5")) or tmp_path / "w.weights.h5",
                 legacy_weights(reference, tmp_path / "notop.h5")):  # fmt: skip
        model = build_netcore(weights=str(path), include_top=False, input_shape=(32, 32, 3), **options)
        assert_same(model.predict(X), expected)
    assert [layer.name for layer in model.layers][1:] == [layer.name for layer in reference.layers][1:]
    text = model.summary(print_fn=None)
    trainable = sum(int(np.prod(w.shape)) for w in reference.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in reference.non_trainable_weights)
    assert f"total parameters: {trainable + frozen:,}" in text and f"trainable parameters: {trainable:,}" in text
    assert f"non-trainable parameters: {frozen:,}" in text


@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2"])
def test_applications_with_their_top_and_pooling(tmp_path, name):
    build_keras, build_netcore, options = NETWORKS[name]
    reference = build_keras(weights=None, include_top=True, classes=5, input_shape=(32, 32, 3), **options)
    model = build_netcore(weights=None, include_top=True, classes=5, input_shape=(32, 32, 3), **options)
    model.set_weights(reference.get_weights())  # the same weights in the same order, as Keras lists them
    X = images()
    assert_same(model.predict(X), reference.predict(X, verbose=0))
    pooled = build_netcore(weights=None, include_top=False, pooling="max", input_shape=(32, 32, 3), **options)
    assert len(pooled.output_shape) == 1


def test_preprocess_input_is_kerass():
    X = images(rows=2)
    np.testing.assert_allclose(
        applications.vgg16.preprocess_input(X), keras.applications.vgg16.preprocess_input(X.copy()), rtol=1e-6
    )
    np.testing.assert_allclose(
        applications.mobilenet_v2.preprocess_input(X),
        keras.applications.mobilenet_v2.preprocess_input(X.copy()),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        applications.resnet50.preprocess_input(X), keras.applications.resnet50.preprocess_input(X.copy()), rtol=1e-6
    )


def test_imagenet_weights_come_from_kerass_cache_or_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("no network here")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    file_name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    with pytest.raises(
        netcore.DataError, match=rf"download https://\S+/{file_name} and put it at \S+models/{file_name}"
    ):
        applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights="imagenet")
    reference = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.35)
    os.makedirs(tmp_path / "models", exist_ok=True)
    legacy_weights(reference, tmp_path / "models" / file_name)
    model = applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights="imagenet")
    X = images(rows=1, size=96)
    assert_same(model.predict(X), reference.predict(X, verbose=0))


# ----------------------------------------------------------------------------------------------- model files
def residual_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4)(keras.layers.Conv2D(6, 3, padding="same")(x))
    x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
    x = keras.layers.MaxPooling2D()(keras.layers.ZeroPadding2D(((1, 0), (0, 1)))(x))
    x = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def recurrent():
    return keras.Sequential(
        [
            keras.Input((7,)),
            keras.layers.Embedding(20, 5, mask_zero=True),
            keras.layers.LSTM(6, return_sequences=True),
            keras.layers.Bidirectional(keras.layers.GRU(4)),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def two_inputs():
    a, b = keras.Input((5,), name="a"), keras.Input((4,), name="b")
    shared = keras.layers.Dense(4, activation="tanh", name="shared")
    joined = keras.layers.Concatenate()([shared(a), keras.layers.Dense(4)(b), shared(keras.layers.Dense(5)(b))])
    return keras.Model([a, b], [keras.layers.Dense(2, activation="softmax", name="cls")(joined),
                                keras.layers.Dense(1, name="score")(joined)])  # fmt: skip


def data_for(model):
    rng = np.random.default_rng(1)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    if model.inputs[0].shape[1:] == (7,):  # word indices, padding in front
        X = rng.integers(1, 20, (6, 7))
        X[:, :2] = 0
        return [X]
    return [rng.standard_normal((6, *shape)).astype("float32") for shape in shapes]


MODELS = {"residual cnn": residual_cnn, "recurrent": recurrent, "two inputs and outputs": two_inputs}


def _trained(build):
    model = build()
    X = data_for(model)
    targets = [np.zeros((6, *t.shape[1:])) for t in model.outputs]
    model.compile("adam", "mse")
    model.fit(X if len(X) > 1 else X[0], targets if len(targets) > 1 else targets[0], epochs=2, verbose=0)
    return model, X  # trained: batch norm's moving statistics moved off their start


def _predictions(model, X, netcore_side):
    out = model.predict(X if len(X) > 1 else X[0], **({} if netcore_side else {"verbose": 0}))
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize("fmt", [".keras", ".h5"])
@pytest.mark.parametrize("name", list(MODELS))
def test_keras_models_load_into_netcore(tmp_path, name, fmt):
    reference, X = _trained(MODELS[name])
    path = str(tmp_path / f"m{fmt}")
    reference.save(path)
    model = load_model(path, device="numba")
    assert isinstance(model, Sequential if name == "recurrent" else Model)
    for got, want in zip(_predictions(model, X, True), _predictions(reference, X, False), strict=True):
        assert_same(got, want)


@pytest.mark.parametrize("name", list(MODELS))
def test_netcore_writes_keras_files_keras_reads(tmp_path, name):
    model = load_model(_save(_trained(MODELS[name])[0], tmp_path / "source.keras"), device="numpy")
    X = data_for(model)
    path = tmp_path / "back.keras"
    model.save(path)
    again = keras.models.load_model(path)
    for got, want in zip(_predictions(again, X, False), _predictions(model, X, True), strict=True):
        assert_same(got, want)
    weights = tmp_path / "back.weights.h5"
    model.save_weights(weights)
    again.set_weights([w * 0 for w in again.get_weights()])
    again.load_weights(weights)
    for got, want in zip(_predictions(again, X, False), _predictions(model, X, True), strict=True):
        assert_same(got, want)


def _save(model, path):
    model.save(str(path))
    return path


def test_a_model_built_in_netcore_goes_to_keras(tmp_path):
    x = netcore.Input((6, 6, 2))
    h = netcore.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    h = netcore.layers.ReLU(6.0)(netcore.layers.BatchNormalization()(h))
    out = netcore.layers.Dense(3, "softmax")(netcore.layers.Flatten()(h))
    model = Model(x, out, device="numpy", seed=0)
    model.compile("adam", "cross_entropy")
    X = np.random.default_rng(0).standard_normal((8, 6, 6, 2)).astype("float32")
    model.fit(X, np.arange(8) % 3, epochs=2, verbose=0)
    model.save(tmp_path / "n.keras")
    assert_same(keras.models.load_model(tmp_path / "n.keras").predict(X, verbose=0), model.predict(X))
    torch_convention = Sequential([netcore.layers.BatchNorm()], input_shape=(3,))
    with pytest.raises(netcore.ConfigurationError, match="use BatchNormalization to write Keras files"):
        torch_convention.save(tmp_path / "t.keras")
    assert not (tmp_path / "t.keras").exists()


# ----------------------------------------------------------------------------------------------- refusals
def _archive_with(tmp_path, mutate) -> str:
    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    path = str(tmp_path / "x.keras")
    reference.save(path)
    with zipfile.ZipFile(path) as archive:
        config, weights = json.loads(archive.read("config.json")), archive.read("model.weights.h5")
    mutate(config)
    changed = str(tmp_path / "changed.keras")
    with zipfile.ZipFile(changed, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
        archive.writestr("model.weights.h5", weights)
    return changed


def test_a_lambda_layer_is_refused_by_name_and_nothing_runs(tmp_path):
    def add_lambda(config):
        config["config"]["layers"].append(
            {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "evil", "function": "os.system"}}
        )

    with pytest.raises(netcore.ConfigurationError, match="'evil' \\(Lambda\\).*runs no code"):
        load_model(_archive_with(tmp_path, add_lambda))


def test_custom_and_unknown_classes_are_refused_with_what_netcore_reads(tmp_path):
    def custom(config):
        config["config"]["layers"][1]["module"] = "my_package.layers"

    with pytest.raises(netcore.ConfigurationError, match="my_package.layers.Dense is a custom class"):
        load_model(_archive_with(tmp_path, custom))

    def unknown(config):
        config["config"]["layers"][1]["class_name"] = "Attention"

    with pytest.raises(netcore.ConfigurationError, match="netcore has no such layer; it reads .*Conv2D"):
        load_model(_archive_with(tmp_path, unknown))


def test_broken_files_raise_checkpoint_errors(tmp_path):
    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    good = tmp_path / "m.keras"
    reference.save(str(good))
    truncated = tmp_path / "t.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(netcore.CheckpointError, match="not a readable .keras archive"):
        load_model(truncated)
    corrupt = tmp_path / "c.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(netcore.CheckpointError):
        load_model(corrupt)
    model = Sequential([netcore.layers.Dense(2)], input_shape=(3,), device="numpy", seed=0)
    with pytest.raises(netcore.CheckpointError):
        model.load_weights(corrupt)


def test_a_weight_file_that_does_not_fit_names_the_layer_and_changes_nothing(tmp_path):
    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(2)])
    path = str(tmp_path / "w.weights.h5")
    reference.save_weights(path)
    model = Sequential([netcore.layers.Dense(4), netcore.layers.Dense(3)], input_shape=(3,), device="numpy", seed=0)
    before = model.get_weights()
    with pytest.raises(netcore.CheckpointError, match=r"dense_1\.W has shape \(4, 3\), the file \(4, 2\)"):
        model.load_weights(path)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_command_line_summarises_and_evaluates_keras_files(tmp_path, capsys):
    from netcore.cli import main

    data = netcore.datasets.load("digits", seed=0)
    reference = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    reference.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    reference.fit(data.X_train, data.y_train, epochs=3, verbose=0)
    path = str(tmp_path / "digits.keras")
    reference.save(path)
    assert main(["summary", path]) == 0
    assert f"total parameters: {reference.count_params():,}" in capsys.readouterr().out
    assert main(["evaluate", path, "--dataset", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    _, accuracy = reference.evaluate(data.X_test, data.y_test, verbose=0)
    assert result["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_a_frozen_base_computes_no_weight_gradients_and_nothing_below_the_head():
    base = applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    base.trainable = False
    head = netcore.layers.Dense(3, "softmax")(netcore.layers.GlobalAveragePooling2D()(base.output))
    model = Model(base.input, head)
    model.compile("adam", "cross_entropy")
    assert [step.runner.name for step in model.executor.backward_steps] == ["dense"]  # backward stops at the head


def test_a_failed_write_of_a_keras_file_leaves_nothing(tmp_path, monkeypatch):
    model = Sequential([netcore.layers.Dense(2)], input_shape=(3,), device="numpy", seed=0)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)
    for name in ("m.keras", "w.weights.h5"):
        with pytest.raises(OSError, match="disk full"):
            model.save(tmp_path / name) if name.endswith(".keras") else model.save_weights(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
