"""Metrics agree with scikit-learn's; plots write real PNG files; summary reports the model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

import netcore
from netcore import metrics, plot
from netcore.layers import Dense


@pytest.fixture
def classification(backend):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((200, 4))
    pred = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 4, 200)
    return backend, pred, y


def test_classification_metrics_match_sklearn(classification):
    backend, pred, y = classification
    p, t = backend.asarray(pred), backend.asarray(y)
    labels = pred.argmax(1)
    assert metrics.accuracy(backend, p, t) == pytest.approx(sk.accuracy_score(y, labels))
    assert metrics.top_3_accuracy(backend, p, t) == pytest.approx(sk.top_k_accuracy_score(y, pred, k=3))
    for ours, name in [
        (metrics.precision, "precision_score"),
        (metrics.recall, "recall_score"),
        (metrics.f1, "f1_score"),
    ]:
        expected = getattr(sk, name)(y, labels, average="macro", zero_division=0)
        assert ours(backend, p, t) == pytest.approx(expected)


def test_binary_metrics_match_sklearn(backend):
    rng = np.random.default_rng(1)
    prob = rng.random((100, 1))
    y = (rng.random(100) < 0.4).astype(float)
    p, t = backend.asarray(prob), backend.asarray(y.reshape(-1, 1))
    labels = (prob[:, 0] >= 0.5).astype(int)
    assert metrics.precision(backend, p, t) == pytest.approx(sk.precision_score(y, labels))
    assert metrics.recall(backend, p, t) == pytest.approx(sk.recall_score(y, labels))
    assert metrics.f1(backend, p, t) == pytest.approx(sk.f1_score(y, labels))


def test_regression_metrics_match_sklearn(backend):
    rng = np.random.default_rng(2)
    target, pred = rng.standard_normal((50, 2)), rng.standard_normal((50, 2))
    p, t = backend.asarray(pred), backend.asarray(target)
    assert metrics.mse(backend, p, t) == pytest.approx(sk.mean_squared_error(target, pred))
    assert metrics.mae(backend, p, t) == pytest.approx(sk.mean_absolute_error(target, pred))
    assert metrics.r2(backend, p, t) == pytest.approx(sk.r2_score(target, pred))


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_history_and_decision_boundary_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from netcore import datasets

    data = datasets.load("moons", seed=0)
    model = netcore.Sequential([Dense(16, "tanh"), Dense(2, "softmax")], input_dim=2, device="numpy", seed=0)
    model.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy", ["accuracy"])
    history = model.fit(data.X_train, data.y_train, epochs=5, validation_split=0.2, verbose=0)
    plot.history(history, tmp_path / "h.png")
    plot.decision_boundary(model, data.X_test, data.y_test, tmp_path / "b.png", resolution=50)
    assert _png_size(tmp_path / "h.png") == (900, 360)
    assert _png_size(tmp_path / "b.png") == (550, 450)
    assert (tmp_path / "h.png").stat().st_size > 10_000
    with pytest.raises(plot.PlotError, match="2-D"):
        plot.decision_boundary(model, np.ones((3, 3)), [0, 1, 0])


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(plot.PlotError, match=r"netcore-nn\[plot\]"):
        plot.history({"loss": [1.0]})


def test_summary_lists_layers_counts_device_and_dtype():
    model = netcore.Sequential(
        [Dense(4, "relu"), netcore.layers.BatchNorm(), Dense(2)], input_dim=3, device="numpy", dtype="float64", seed=0
    )
    text = model.summary(print_fn=None)
    assert "dense (Dense)" in text and "(None, 4)" in text and "batchnorm (BatchNorm)" in text
    assert "trainable parameters: 34" in text and "non-trainable parameters: 8" in text
    assert "total parameters: 42" in text
    batchnorm_row = next(line for line in text.splitlines() if line.startswith("batchnorm"))
    assert batchnorm_row.split()[-1] == "16"  # gamma, beta, running mean and variance: the column adds up
    assert "device: numpy, dtype: float64" in text
