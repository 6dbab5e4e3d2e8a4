"""Checkpoints of functional models: the topology travels with the weights, and training resumes bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore import callbacks
from netcore.layers import Activation, BatchNorm, Concatenate, Dense, Dropout, Input, Subtract
from netcore.models import Model
from tests.conftest import require


def make(device):
    inner_input = Input((4,))
    encoder = Model(inner_input, Dense(6, "tanh")(inner_input), name="encoder", device=device, seed=2)
    a, b = Input((4,), name="a"), Input((4,), name="b")
    left, right = encoder(a), encoder(b)
    shared = Dense(5, use_bias=False)
    h = Activation("relu")(BatchNorm()(Concatenate()([shared(left), shared(right), Subtract()([left, right])])))
    h = Dropout(0.2)(h)
    model = Model([a, b], {"cls": Dense(3, "softmax")(h), "score": Dense(1)(h)}, device=device, seed=3, name="siamese")
    model.compile(
        netcore.optimizers.NAdam(lr=5e-3),
        {"cls": "cross_entropy", "score": "mse"},
        metrics={"cls": ["accuracy"]},
        loss_weights={"cls": 1.0, "score": 0.25},
        schedule=netcore.schedules.StepLR(3, 0.7),
    )
    return model


def data():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((120, 4)).astype("float32"), rng.standard_normal((120, 4)).astype("float32")
    return {"a": a, "b": b}, {"cls": (a[:, 0] > b[:, 0]).astype(int) + (a[:, 1] > 1), "score": a[:, 2:3] - b[:, 2:3]}


def _resume(tmp_path, device):
    X, y = data()
    options = dict(batch_size=16, validation_split=0.2, verbose=0)
    straight = make(device)
    straight.fit(X, y, epochs=8, callbacks=[callbacks.EarlyStopping(patience=50)], **options)
    first = make(device)
    first.fit(X, y, epochs=4, callbacks=[callbacks.EarlyStopping(patience=50)], **options)
    first.save(tmp_path / "half.ncz")
    resumed = netcore.models.load_model(tmp_path / "half.ncz")
    assert type(resumed) is Model and resumed.output_names == ["cls", "score"]
    assert resumed.summary(print_fn=None) == first.summary(print_fn=None)
    history = resumed.fit(X, y, epochs=4, callbacks=[callbacks.EarlyStopping(patience=50)], **options)
    assert set(history.history) >= {"cls_loss", "score_loss", "cls_accuracy", "val_score_loss"}
    for got, want in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert resumed.optimizer.lr == straight.optimizer.lr


@pytest.mark.parametrize("device", ["numpy", "numba", "cupy-on-cpu"])
def test_a_graph_model_resumes_bit_for_bit(tmp_path, device):
    if device != "cupy-on-cpu":
        require(device)
        return _resume(tmp_path, device)
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    with cupy_on_cpu():
        _resume(tmp_path, "cupy")


def test_frozen_layers_and_a_nested_models_layers_load_as_saved(tmp_path):
    model = make("numpy")
    model.get_layer("encoder").trainable = False
    model.compile("adam", {"cls": "cross_entropy", "score": "mse"})
    model.save(tmp_path / "m.ncz")
    loaded = netcore.load(tmp_path / "m.ncz", device="numba")
    assert [layer.trainable for layer in loaded.get_layer("encoder").leaf_layers()] == [False]
    assert loaded.get_layer("encoder").name == "encoder" and loaded.device == "numba"
    X, _ = data()
    for got, want in zip(loaded.predict(X).values(), model.predict(X).values(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
