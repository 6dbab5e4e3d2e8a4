"""Functional models as users write them: Input, layer calls, Model(inputs, outputs), what the model shows of its
topology, several inputs and outputs in fit/evaluate/predict, nested models, and every error a bad graph or bad data
gets (each names what is wrong)."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import (
    Activation,
    Add,
    BatchNorm,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    RandomFlip,
    Subtract,
)
from netcore.models import Model, Sequential


def two_in_two_out(device="numpy", dtype="float32"):
    image, table = Input((4, 4, 1), name="image"), Input((3,), name="table")
    features = Flatten()(Conv2D(2, 3, padding="same", activation="relu")(image))
    joined = Concatenate()([features, Dense(4, "relu")(table)])
    cls = Dense(3, "softmax", name="cls")(joined)
    box = Dense(2, name="box")(joined)
    return Model([image, table], [cls, box], device=device, dtype=dtype, seed=0)


def data(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((rows, 4, 4, 1)), rng.standard_normal((rows, 3))]
    y = [rng.integers(0, 3, rows), rng.standard_normal((rows, 2))]
    return X, y


# ----------------------------------------------------------------------------------------------- topology
def test_input_gives_a_symbolic_tensor_with_a_batch_axis_of_none():
    x = Input(shape=(32, 32, 3), name="image")
    assert x.shape == (None, 32, 32, 3) and x.name == "image"
    y = Dense(5)(x)
    assert y.shape == (None, 32, 32, 5)


def test_the_model_shows_its_inputs_outputs_and_layers():
    model = two_in_two_out()
    assert model.input_names == ["image", "table"] and model.output_names == ["cls", "box"]
    assert [t.shape for t in model.inputs] == [(None, 4, 4, 1), (None, 3)]
    assert model.output[0] is model.outputs[0] and len(model.output) == 2
    names = [layer.name for layer in model.layers]
    assert names[0] == "image" and "table" in names and names[-2:] == ["cls", "box"]
    assert model.get_layer("cls").output is model.outputs[0]
    assert model.get_layer("cls").input is model.get_layer("concatenate").output
    assert model.get_layer("concatenate").input == [model.get_layer("flatten").output, model.get_layer("dense").output]
    with pytest.raises(netcore.ConfigurationError, match="no layer named 'nope'.*image, "):
        model.get_layer("nope")


def test_summary_says_what_each_layer_is_connected_to_and_totals_as_keras():
    model = two_in_two_out()
    text = model.summary(print_fn=None)
    assert "connected to" in text
    assert "concatenate (Concatenate)" in text and "flatten[0][0], dense[0][0]" in text
    assert "image (InputLayer)" in text and "(None, 4, 4, 1)" in text
    total = sum(w.size for w in model.get_weights())
    assert f"total parameters: {total:,}" in text and "non-trainable parameters: 0" in text


def test_sequential_is_a_line_of_the_same_engine_and_keeps_its_summary():
    model = Sequential([Dense(4, "relu"), Dense(2, "softmax")], input_dim=3, device="numpy", seed=0)
    assert isinstance(model, Model) and "connected to" not in model.summary(print_fn=None)
    assert model.input.shape == (None, 3) and model.layers[0].output.shape == (None, 4)
    head = Dense(3, "softmax")(model.layers[0].output)  # a new model on the Sequential model's graph
    branch = Model(model.input, head, device="numpy")
    assert branch.count_params() == 3 * 4 + 4 + 4 * 3 + 3


def test_weights_come_in_keras_order_and_round_trip():
    model = two_in_two_out()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 1, 2), (2,), (3, 4), (4,), (36, 3), (3,), (36, 2), (2,)]
    weights = [np.full(s, float(i)) for i, s in enumerate(shapes)]
    model.set_weights(weights)
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------------------- training
def test_several_inputs_and_outputs_train_with_lists_or_dicts_and_name_history_as_keras():
    model = two_in_two_out()
    model.compile("adam", {"cls": "cross_entropy", "box": "mse"}, metrics={"cls": ["accuracy"]}, loss_weights=[1, 2])
    X, y = data()
    history = model.fit(X, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    assert set(history.history) >= {
        "loss", "cls_loss", "box_loss", "cls_accuracy", "val_loss", "val_cls_loss", "val_box_loss", "val_cls_accuracy"
    }  # fmt: skip
    epoch = {key: values[-1] for key, values in history.history.items()}
    assert epoch["loss"] == pytest.approx(epoch["cls_loss"] + epoch["box_loss"], rel=1e-6)
    by_name = model.fit({"table": X[1], "image": X[0]}, {"box": y[1], "cls": y[0]}, epochs=1, verbose=0)
    assert len(by_name.epoch) == 1
    scores = model.evaluate(X, y)
    assert isinstance(scores, list) and len(scores) == 4
    named = model.evaluate(X, y, return_dict=True)
    assert list(named) == model.score_names() == ["loss", "cls_loss", "box_loss", "cls_accuracy"]
    assert scores == pytest.approx(list(named.values()))
    assert named["loss"] == pytest.approx(named["cls_loss"] + named["box_loss"], rel=1e-6)
    cls, box = model.predict(X)
    assert cls.shape == (40, 3) and box.shape == (40, 2)
    np.testing.assert_allclose(cls.sum(axis=1), 1, rtol=1e-5)


def test_evaluate_returns_what_keras_returns():
    X = np.random.default_rng(0).standard_normal((30, 3))
    y = np.random.default_rng(1).integers(0, 2, 30)
    model = Sequential([Dense(2, "softmax")], input_dim=3, device="numpy", seed=0)
    model.compile("adam", "cross_entropy")
    assert isinstance(model.evaluate(X, y), float)
    model.compile("adam", "cross_entropy", ["accuracy"])
    loss, accuracy = model.evaluate(X, y)  # the most common Keras line
    assert isinstance(loss, float) and 0 <= accuracy <= 1
    assert model.evaluate(X, y, return_dict=True) == {"loss": loss, "accuracy": accuracy}


def test_outputs_given_as_a_dict_are_predicted_as_a_dict():
    x = Input((3,))
    h = Dense(4, "tanh")(x)
    model = Model(x, {"score": Dense(1)(h), "label": Dense(2, "softmax")(h)}, device="numpy", seed=0)
    assert model.output_names == ["score", "label"]
    model.compile("adam", {"score": "mse", "label": "cross_entropy"})
    X = np.ones((5, 3))
    out = model.predict(X)
    assert set(out) == {"score", "label"} and out["label"].shape == (5, 2)
    model.fit(X, {"score": np.zeros((5, 1)), "label": np.zeros(5, int)}, verbose=0)


def test_a_shared_layer_sums_the_gradients_of_its_calls():
    a, b = Input((4,)), Input((4,))
    shared = Dense(3, use_bias=False)
    model = Model([a, b], Subtract()([shared(a), shared(b)]), device="numpy", dtype="float64", seed=0)
    model.compile("sgd", "mse")
    X = [np.ones((2, 4)), np.zeros((2, 4))]
    model.loss_and_gradients(*model.prepare(X, np.zeros((2, 3)))[:2])
    W = model.get_weights()[0]
    out = np.ones((2, 4)) @ W  # d/dW of mean((x_a W - x_b W)^2) = 2/6 * (x_a - x_b)^T (x_a W - x_b W)
    expected = 2 / 6 * (np.ones((2, 4)) - 0).T @ out
    np.testing.assert_allclose(shared.grads["W"], expected, rtol=1e-12)


def test_a_trained_model_called_on_a_tensor_is_a_layer_and_trainable_false_freezes_it():
    base = two_in_two_out()
    image, table = Input((4, 4, 1)), Input((3,))
    cls, _ = base([image, table])
    head = Dense(2, "softmax")(Activation("relu")(cls))
    model = Model([image, table], head, device="numpy", seed=1)
    assert any(layer is base for layer in model.layers)
    before = base.get_weights()
    base.trainable = False
    model.compile("adam", "cross_entropy")
    X, _ = data()
    model.fit(X, np.arange(40) % 2, epochs=2, verbose=0)
    text = model.summary(print_fn=None)
    assert f"non-trainable parameters: {sum(w.size for w in before):,}" in text
    for got, want in zip(base.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_seed_notes_transfer_learning_from_a_trained_models_layer_output():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 6, 6, 1)), rng.integers(0, 3, 60)
    base_model = Sequential(
        [Conv2D(4, 3, activation="relu", name="features"), Flatten(), Dense(3, "softmax")],
        input_shape=(6, 6, 1),
        device="numpy",
        seed=0,
    )
    base_model.compile("adam", "cross_entropy")
    base_model.fit(X, y, epochs=2, verbose=0)
    for layer in base_model.layers:
        layer.trainable = False
    x = Flatten()(base_model.get_layer("features").output)
    x = Dense(8, activation="relu")(x)
    output = Dense(2, activation="softmax")(x)
    model = Model(inputs=base_model.input, outputs=output)
    frozen = base_model.get_weights()[:2]
    model.compile(optimizer=netcore.optimizers.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    model.fit(X, y % 2, epochs=3, verbose=0)
    for got, want in zip(model.get_weights()[:2], frozen, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(base_model.get_weights()[0], frozen[0])


def test_clone_and_move_keep_the_graph_and_its_predictions():
    model = two_in_two_out(dtype="float64")
    model.compile("adam", ["cross_entropy", "mse"], metrics=[["accuracy"], []])
    X, y = data()
    model.fit(X, y, epochs=1, verbose=0)
    twin = model.clone(device="numba")
    assert twin.output_names == model.output_names and twin.heads[1].loss.name == "MeanSquaredError"
    for got, want in zip(twin.predict(X), model.predict(X), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    model.to("numba")
    assert model.fit(X, y, epochs=1, verbose=0).history["loss"]


def test_a_functional_model_traces_shapes_of_every_layer_kind():
    x = Input((8, 8, 2))
    h = BatchNorm()(Conv2D(3, 3, padding="same")(x))
    h = Dropout(0.5)(Add()([h, Conv2D(3, 1)(x)]))
    assert h.shape == (None, 8, 8, 3)
    assert Add()([Dense(3)(Input((5, 3))), Input((1, 3))]).shape == (None, 5, 3)  # size-1 broadcast


# ----------------------------------------------------------------------------------------------- errors
def test_an_output_that_depends_on_a_missing_input_names_it():
    a, b = Input((3,), name="first"), Input((3,), name="second")
    out = Add()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(netcore.ConfigurationError, match="depends on the Input 'second'"):
        Model(a, out)


def test_an_input_no_output_uses_is_named():
    a, b = Input((3,), name="used"), Input((3,), name="unused")
    with pytest.raises(netcore.ConfigurationError, match="no output depends on the input.*'unused'"):
        Model([a, b], Dense(2)(a))


def test_two_layers_with_one_given_name_are_refused_while_made_up_names_are_numbered():
    x = Input((3,))
    with pytest.raises(netcore.ConfigurationError, match="two layers are named 'same'"):
        Model(x, Dense(2, name="same")(Dense(2, name="same")(x)))
    x = Input((3,))
    model = Model(x, Dense(2)(Dense(2)(x)))
    assert [layer.name for layer in model.layers[1:]] == ["dense", "dense_1"]


def test_merges_that_do_not_fit_name_the_layer_and_every_shape():
    a, b = Input((3,)), Input((4,))
    with pytest.raises(netcore.ShapeError, match=r"add .*\(None, 3\), \(None, 4\)"):
        Add(name="add")([a, b])
    with pytest.raises(netcore.ShapeError, match=r"concatenate.*\(None, 2, 3\), \(None, 3, 3\).*every axis but"):
        Concatenate(name="concatenate")([Input((2, 3)), Input((3, 3))])
    with pytest.raises(netcore.ShapeError, match="exactly 2 tensors, got 3"):
        Subtract()([a, a, a])
    with pytest.raises(netcore.ShapeError, match="at least 2 tensors, got 1"):
        Add()([a])


def test_inputs_of_a_model_must_come_from_input():
    x = Input((3,))
    hidden = Dense(2)(x)
    with pytest.raises(netcore.ConfigurationError, match="comes from layer dense.*made by Input"):
        Model(hidden, Dense(1)(hidden))


def test_a_layer_with_weights_called_on_two_shapes_is_refused():
    shared = Dense(2)
    a, b = Input((3,)), Input((4,))
    with pytest.raises(netcore.ShapeError, match="called on inputs of shapes.*weights fit only one"):
        Model([a, b], Concatenate()([shared(a), shared(b)]))


def test_input_only_layers_after_weights_are_refused_in_graphs():
    x = Input((4, 4, 1))
    with pytest.raises(netcore.ConfigurationError, match="random_flip.*before every layer with weights"):
        Model(x, RandomFlip()(Conv2D(1, 1)(x)))


def test_bad_data_for_several_inputs_names_the_models_inputs():
    model = two_in_two_out()
    model.compile("adam", ["cross_entropy", "mse"])
    X, y = data()
    with pytest.raises(netcore.ShapeError, match=r"holds 1 arrays but the model's inputs are 2: \['image', 'table'\]"):
        model.fit([X[0]], y, verbose=0)
    with pytest.raises(netcore.ShapeError, match=r"unknown key\(s\) \['tabel'\].*\['image', 'table'\]"):
        model.predict({"image": X[0], "tabel": X[1]})
    with pytest.raises(netcore.ShapeError, match=r"has no entry for \['table'\]"):
        model.predict({"image": X[0]})
    with pytest.raises(netcore.ShapeError, match="pass X as a list of 2 arrays or a dict"):
        model.predict(X[0])
    with pytest.raises(netcore.ShapeError, match=r"X\['table'\] has 4 features but input 'table' expects 3"):
        model.predict([X[0], np.ones((40, 4))])
    with pytest.raises(netcore.ShapeError, match=r"different numbers of rows \(image: 40, table: 39\)"):
        model.predict([X[0], X[1][:39]])
    with pytest.raises(netcore.ShapeError, match=r"y\['box'\] must have shape"):
        model.fit(X, [y[0], np.ones((40, 3))], verbose=0)


def test_a_loss_dict_must_name_every_output():
    model = two_in_two_out()
    with pytest.raises(netcore.ConfigurationError, match=r"no entry for the output\(s\) \['box'\]"):
        model.compile("adam", {"cls": "cross_entropy"})
    with pytest.raises(netcore.ConfigurationError, match=r"entries for \['boxes'\], which are not outputs"):
        model.compile("adam", {"cls": "cross_entropy", "box": "mse", "boxes": "mse"})
    with pytest.raises(netcore.ConfigurationError, match="3 entries for 2 outputs"):
        model.compile("adam", ["mse", "mse", "mse"])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_failed_fit_leaves_a_graph_model_as_it_was():
    model = two_in_two_out()
    model.compile("adam", ["cross_entropy", "mse"])
    X, y = data()
    before = model.get_weights()
    bad = [X[0], X[1].copy()]
    bad[1][-1, 0] = np.nan  # found when the data is checked, before any step
    with pytest.raises(netcore.ShapeError, match="NaN"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(netcore.DivergenceError):
        model.fit(X, [y[0], np.full((40, 2), 1e30)], epochs=1, verbose=0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.optimizer.step_count == 0


def test_layers_refuse_arrays_and_say_how_to_use_them():
    with pytest.raises(netcore.ConfigurationError, match="call layers on the tensors that Input"):
        Dense(2)(np.ones((3, 2)))
