"""Embedding: PyTorch's nn.Embedding as the oracle (48 Adam steps, float64 to 1e-10, on every backend), float64
gradient checks with repeated indices, mask_zero masking exactly as Masking does, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.layers import (
    GRU,
    LSTM,
    Dense,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    Input,
    Masking,
)
from netcore.models import Model, Sequential

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")

from tests.core.oracle import BATCH, ROWS, STEPS  # noqa: E402
from tests.core.test_torch_oracle import assert_close  # noqa: E402

VOCABULARY, TIME = 11, 6


def sentences(seed=0, rows=ROWS, padded=False):
    rng = np.random.default_rng(seed)
    X = rng.integers(1 if padded else 0, VOCABULARY, (rows, TIME))
    if padded:  # pre-padding of varied lengths, as pad_sequences makes it
        for i, length in enumerate(rng.integers(1, TIME + 1, rows)):
            X[i, : TIME - length] = 0
    return X, rng.integers(0, 3, rows)


@pytest.mark.parametrize("pooling", ["flatten", "mean"])
def test_embedding_trains_as_torch_nn_embedding(backend, pooling):
    head = [Flatten()] if pooling == "flatten" else [GlobalAveragePooling1D()]
    model = Sequential(
        [Embedding(VOCABULARY, 4), *head, Dense(3, "softmax")],
        input_shape=(TIME,),
        device=backend.name,
        dtype="float64",
        seed=0,
    )
    model.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    table, kernel, bias = model.get_weights()
    embedding = torch.nn.Embedding(VOCABULARY, 4, dtype=torch.float64)
    linear = torch.nn.Linear(kernel.shape[0], 3, dtype=torch.float64)
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(table))
        linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
        linear.bias.copy_(torch.from_numpy(bias))
    optimizer = torch.optim.Adam([*embedding.parameters(), *linear.parameters()], lr=1e-2)
    X, y = sentences()
    ours, theirs = [], []
    for step in range(STEPS):
        rows = slice((step * BATCH) % ROWS, (step * BATCH) % ROWS + BATCH)
        ours.append(model.train_on_batch(X[rows], y[rows]))
        optimizer.zero_grad()
        vectors = embedding(torch.from_numpy(X[rows]))
        pooled = vectors.flatten(1) if pooling == "flatten" else vectors.mean(dim=1)
        loss = torch.nn.functional.cross_entropy(linear(pooled), torch.from_numpy(y[rows]))
        loss.backward()
        optimizer.step()
        theirs.append(loss.item())
    assert_close(ours, theirs, "float64", "losses")
    assert_close(model.get_weights()[0], embedding.weight.detach().numpy(), "float64", "table")


def test_the_tables_gradient_adds_repeated_indices(backend):
    X = np.array([[1, 1, 1, 2], [2, 0, 1, 1], [3, 3, 3, 3]])  # repeats within and across rows
    model = Sequential([Embedding(5, 3), Flatten(), Dense(2)], input_shape=(4,), device=backend.name, dtype="float64")
    model.compile("sgd", "mse")
    report = netcore.check_gradients(model, X, np.random.default_rng(0).standard_normal((3, 2)))
    assert set(report) == {"embedding.embeddings", "dense.W", "dense.b"}
    report.raise_if_above(1e-7)


def test_unused_rows_of_the_table_get_a_zero_gradient():
    model = Sequential([Embedding(6, 2), Flatten(), Dense(1)], input_shape=(3,), device="numba", dtype="float64")
    model.compile("sgd", "mse")
    model.loss_and_gradients(*model.prepare(np.array([[1, 1, 4]]), np.ones((1, 1)))[:2])
    grads = model.leaf_layers()[0].grads["embeddings"]
    assert np.all(grads[[0, 2, 3, 5]] == 0) and np.all(grads[[1, 4]] != 0)


@pytest.mark.parametrize("cell", [LSTM, GRU])
def test_mask_zero_masks_padded_steps_exactly_as_masking_does(backend, cell):
    X, y = sentences(padded=True)
    masked = Sequential(
        [Embedding(VOCABULARY, 4, mask_zero=True), cell(5), Dense(3, "softmax")],
        input_shape=(TIME,),
        device=backend.name,
        dtype="float64",
        seed=0,
    )
    weights = masked.get_weights()
    reference = Sequential(
        [Masking(0.0), cell(5), Dense(3, "softmax")], input_shape=(TIME, 4), device="numpy", dtype="float64"
    )
    reference.set_weights(weights[1:])
    vectors = weights[0][X] * (X != 0)[..., None]  # padding as all-zero steps, which Masking marks
    np.testing.assert_allclose(masked.predict(X), reference.predict(vectors), rtol=1e-12, atol=1e-14)
    for model in (masked, reference):
        model.compile("sgd", "cross_entropy")
    np.testing.assert_allclose(
        masked.train_on_batch(X, y), reference.train_on_batch(vectors, y), rtol=1e-12
    )  # the loss leaves the padded steps out alike


def test_an_index_outside_the_vocabulary_is_named_with_its_row():
    model = Sequential([Embedding(10, 2), Flatten(), Dense(1)], input_shape=(3,), device="numpy")
    X = np.array([[1, 2, 3], [4, 5, 6], [7, 12, 1]])
    with pytest.raises(netcore.ShapeError, match=r"index 12 in row 2 is outside \[0, 10\)"):
        model.predict(X)
    with pytest.raises(netcore.ShapeError, match=r"index -1 in row 0"):
        model.predict(np.array([[-1, 0, 0]]))


def test_keras_spellings_and_the_graph_rules():
    model = Sequential([Embedding(input_dim=100, output_dim=8, input_length=5), Flatten(), Dense(1)])
    assert model.built and model.input_shape == (5,) and model.layers[0].input_dim == 100
    x = Input((5,))
    with pytest.raises(netcore.ConfigurationError, match="before every layer with weights"):
        Model(x, Embedding(10, 2)(Dense(5)(x)))
    layer = Embedding(30, 4, mask_zero=True, name="words")
    rebuilt = netcore.layers.from_config("Embedding", layer.config())
    assert (rebuilt.input_dim, rebuilt.output_dim, rebuilt.mask_zero, rebuilt.name) == (30, 4, True, "words")


@pytest.mark.parametrize("cell", [LSTM, GRU])
def test_the_padding_row_stays_as_torchs_padding_idx_keeps_it(cell):
    """Where mask_zero and PyTorch's padding_idx agree: padded steps send no gradient, so row 0 never moves, and
    the table's other rows equal an nn.Embedding(padding_idx=0) given the same output gradient."""
    X, y = sentences(padded=True)
    model = Sequential(
        [Embedding(VOCABULARY, 4, mask_zero=True), cell(5), Dense(3, "softmax")],
        input_shape=(TIME,),
        device="numba",
        dtype="float64",
        seed=0,
    )
    model.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy")
    before = model.get_weights()[0]
    model.fit(X, y, epochs=3, batch_size=8, verbose=0)
    after = model.get_weights()[0]
    np.testing.assert_array_equal(after[0], before[0])
    assert np.abs(after[1:] - before[1:]).max() > 1e-3
    layer = model.layers[0]
    layer.forward(X[:8].astype("float64"), True)
    dy = np.random.default_rng(2).standard_normal((8, TIME, 4)) * (X[:8] != 0)[..., None]  # zero where masked
    layer.backward(dy.copy(), need_dx=False)
    embedding = torch.nn.Embedding(VOCABULARY, 4, padding_idx=0, dtype=torch.float64)
    embedding(torch.from_numpy(X[:8])).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.grads["embeddings"], embedding.weight.grad.numpy(), rtol=1e-12, atol=1e-15)
