"""Zero steady-state allocations per training step on the numba backend: every buffer is allocated on the first
batch of a given size, so later steps allocate nothing (measured with tracemalloc, which NumPy reports its array
memory to)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import netcore
from netcore.layers import Activation, BatchNorm, Dense, Dropout
from tests.conftest import require
from tests.core.memory import host_growth

#: Room for Python's own small objects (floats, argument tuples, keyword dicts the interpreter keeps on its free
#: lists: 4.6 KiB when the training tests ran first in the same process, under 4 KiB alone), below one array of the
#: test network: the smallest, 64 x 32 float32 logits, is 8 KiB; the activations are 64 KiB and the parameters
#: 161 KiB.
SLACK_BYTES = 6144


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "nadam"])
def test_numba_training_steps_allocate_nothing(optimizer):
    require("numba")
    model = netcore.Sequential(
        [Dense(256, use_bias=False), BatchNorm(), Activation("relu"), Dropout(0.1), Dense(32, "softmax")],
        input_dim=128,
        device="numba",
        seed=0,
    )
    model.compile(netcore.optimizers.get(optimizer, lr=1e-3), "cross_entropy")
    rng = np.random.default_rng(0)
    X, Y, _ = model.prepare(rng.standard_normal((64, 128)), rng.integers(0, 32, 64))
    peak, lasting = host_growth(lambda: model.train_step(X, Y), repeats=20)
    assert peak < SLACK_BYTES, f"a step allocated {peak} bytes"
    assert lasting < SLACK_BYTES


def test_the_numpy_reference_does_allocate():
    """The check can fail: NumPy's array expressions allocate temporaries."""
    model = netcore.Sequential([Dense(256, "relu"), Dense(10, "softmax")], input_dim=128, device="numpy", seed=0)
    model.compile("adam", "cross_entropy")
    rng = np.random.default_rng(0)
    X, Y, _ = model.prepare(rng.standard_normal((64, 128)), rng.integers(0, 10, 64))
    model.train_step(X, Y)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        model.train_step(X, Y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - baseline > SLACK_BYTES
