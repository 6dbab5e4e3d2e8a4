"""Streamed data: memmaps and other array-likes are read a block at a time, converted and checked as they are
read, shuffled by block then within the block, and prefetched by a background thread."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import netcore
from netcore import streaming
from netcore.layers import Dense
from netcore.trainers import loop

DEVICES = ["numpy", "numba"]


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 KiB, so that small test data spans many."""
    monkeypatch.setattr(streaming, "BLOCK_BYTES", 2**16)


def data(rows: int = 3000, features: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def memmap(tmp_path, X, name="X.npy"):
    np.save(tmp_path / name, X)
    return np.load(tmp_path / name, mmap_mode="r")


def model(device="numpy", dtype="float64", features=20):
    net = netcore.Sequential(
        [Dense(16, "tanh"), Dense(2, "softmax")], input_dim=features, device=device, dtype=dtype, seed=0
    )
    return net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy", ["accuracy"])


class Rows:
    """An array-like as h5py and zarr datasets are: shape, dtype, len and slicing that returns NumPy arrays; it
    records the threads that read it."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.readers = set()

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        self.readers.add(threading.current_thread().name)
        return np.array(self.array[key])


@pytest.mark.parametrize("device", DEVICES)
def test_data_in_one_block_trains_exactly_as_in_memory(tmp_path, device):
    X, y = data()
    trained = []
    for source in (X, memmap(tmp_path, X)):
        net = model(device)
        net.fit(source, y, epochs=3, batch_size=64, verbose=0, validation_split=0.2)
        trained.append(net.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_and_predict_read_block_by_block_with_the_same_results(tmp_path, device, small_blocks):
    X, y = data()
    net = model(device)
    net.fit(X, y, epochs=1, verbose=0)
    mapped = memmap(tmp_path, X)
    np.testing.assert_allclose(net.predict(mapped, batch_size=100), net.predict(X), rtol=0, atol=1e-15)
    streamed, resident = net.evaluate(mapped, y), net.evaluate(X, y)
    assert streamed == pytest.approx(resident, rel=1e-12)


def test_an_epoch_over_many_blocks_visits_every_row_once_in_whole_batches(small_blocks):
    X, y = data(rows=3001)
    net = model()
    net.prepare(X[:2], y[:2])
    rows = streaming.StreamedRows(net, X)
    seen, sizes = [], []
    for xs, _, _, index in loop._batches(net, ([rows], [net.backend.asarray(y)], None), 64, True, False):
        for row in net.backend.to_numpy(xs[0])[net.backend.to_numpy(index)]:
            seen.append(int(np.flatnonzero((row == X).all(axis=1))[0]))
        sizes.append(len(index))
    assert sorted(seen) == list(range(3001))
    assert sizes.count(64) == len(sizes) - 1 and sorted(sizes)[0] == 3001 % 64
    assert seen[:64] != list(range(64))  # shuffled


@pytest.mark.parametrize("device", DEVICES)
def test_a_float64_memmap_is_not_copied_whole_into_a_float32_model(tmp_path, device, small_blocks):
    X, y = data(rows=40_000, features=64)  # 20 MiB as float64; a float32 copy would be 10 MiB
    mapped = memmap(tmp_path, X)
    net = model(device, dtype="float32", features=64)
    net.fit(mapped[:64], y[:64], epochs=1, verbose=0)  # compile and allocate outside the measurement
    tracemalloc.start()
    net.fit(mapped, y, epochs=1, batch_size=128, verbose=0)
    net.predict(mapped)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB of NumPy allocations"


def test_array_likes_are_read_by_the_background_reader(small_blocks):
    X, y = data()
    source = Rows(X)
    net = model()
    history = net.fit(source, y, epochs=2, batch_size=50, verbose=0)
    assert np.isfinite(history["loss"]).all()
    assert any(name.startswith("netcore-reader") for name in source.readers)
    assert net.predict(source).shape == (3000, 2)


def test_dask_arrays_stream_without_being_computed_whole(small_blocks):
    da = pytest.importorskip("dask.array")
    X, y = data()
    lazy = da.from_array(X, chunks=(500, 20))
    net = model()
    net.fit(lazy, y, epochs=1, verbose=0)
    np.testing.assert_allclose(net.predict(lazy), net.predict(X), rtol=0, atol=1e-15)


@pytest.mark.parametrize("offset", [0, 2400])
def test_a_bad_value_is_reported_with_its_row(tmp_path, small_blocks, offset):
    X, y = data()
    X[2717, 3] = np.nan
    mapped = memmap(tmp_path, X)
    net = model()
    with pytest.raises(netcore.ShapeError, match="row 2717"):  # also when the row falls in the validation split
        net.fit(mapped, y, epochs=1, verbose=0, validation_split=0.2 if offset else 0.0)


def test_an_array_like_without_slicing_is_refused_naming_what_is_missing():
    class ShapeOnly:
        shape, dtype = (10, 3), np.dtype("float64")

        def __len__(self):
            return 10

    with pytest.raises(netcore.ShapeError, match="has no __getitem__"):
        model(features=3).fit(ShapeOnly(), np.zeros(10, dtype=int), verbose=0)


def test_a_streamed_input_of_the_wrong_shape_is_refused_before_reading(tmp_path):
    mapped = memmap(tmp_path, np.zeros((10, 7)))
    with pytest.raises(netcore.ShapeError, match="7 features but the first layer"):
        model().fit(mapped, np.zeros(10, dtype=int), verbose=0)


def test_single_batch_calls_read_streamed_data_whole(tmp_path):
    X, y = data(rows=50)
    net = model()
    mapped = memmap(tmp_path, X)
    assert net.train_on_batch(mapped, y) == pytest.approx(model().train_on_batch(X, y))


def test_the_command_line_memory_maps_npy_files(tmp_path):
    from netcore.cli import main

    X, y = data(rows=2000)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    assert (
        main(
            [
                "train",
                "--npy",
                str(tmp_path / "X.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--epochs",
                "5",
                "--json",
                "--save",
                str(tmp_path / "m.ncz"),
            ]
        )
        == 0
    )
    assert main(["evaluate", str(tmp_path / "m.ncz"), "--json"]) == 0
    assert main(["train", "--npy", str(tmp_path / "X.npy"), "--json"]) == 2


def test_streaming_on_the_cupy_backend(tmp_path, cupy_backend, small_blocks):
    """Blocks are read on the host and copied to the device by the reader thread (within the model's device)."""
    X, y = data()
    mapped = memmap(tmp_path, X)
    net = model(cupy_backend)
    history = net.fit(mapped, y, epochs=2, batch_size=64, verbose=0, validation_data=(mapped[:500], y[:500]))
    assert np.isfinite(history["val_loss"]).all()
    np.testing.assert_allclose(net.predict(mapped), net.predict(X), rtol=0, atol=1e-12)


def test_streamed_blocks_reach_the_gpu_through_pinned_memory_on_a_copy_stream(tmp_path, small_blocks):
    """On the cupy backend each epoch's reader stages its blocks in one pinned buffer and copies them on a
    non-blocking stream of its own, each copy first waiting for the work already queued on the computing stream."""
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu, transfers

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    X, y = data()
    mapped = memmap(tmp_path, X)
    with cupy_on_cpu() as backend:
        net = model(backend)
        net.fit(mapped, y, epochs=2, batch_size=64, verbose=0)
        traffic = list(transfers())
        np.testing.assert_allclose(net.predict(mapped), net.predict(X), rtol=0, atol=1e-12)
    copies = [i for i, event in enumerate(traffic) if event[0] == "copy"]
    assert len(copies) >= 2 * (len(X) * X.itemsize * X.shape[1] // streaming.BLOCK_BYTES)
    staged = [event for event in traffic if event[0] == "pinned"]
    assert len(staged) == 4  # per epoch: one buffer for the training blocks, one for the end-of-epoch metrics pass
    for i in copies:
        _, stream, pinned = traffic[i]
        assert pinned and stream.non_blocking
        assert traffic[i - 1] == ("wait", stream)


def _two_input_model(device):
    a, b = netcore.Input((12,), name="a"), netcore.Input((8,), name="b")
    h = netcore.layers.Concatenate()([Dense(8, "tanh")(a), b])
    net = netcore.Model([a, b], Dense(2, "softmax")(h), device=device, dtype="float64", seed=0)
    return net.compile(netcore.optimizers.Adam(lr=1e-2), "cross_entropy", ["accuracy"])


@pytest.mark.parametrize("device", DEVICES)
def test_every_input_of_a_graph_model_streams_block_by_block(tmp_path, device, small_blocks):
    X, y = data(rows=3000)
    parts = [X[:, :12], X[:, 12:]]
    mapped = [memmap(tmp_path, parts[0], "a.npy"), Rows(parts[1])]  # a memmap and an array-like reader
    streamed, resident = _two_input_model(device), _two_input_model(device)
    assert streaming.StreamedRows(streamed, mapped[0]).block_count(64) > 1  # several blocks
    streamed.fit(mapped, y, epochs=1, batch_size=64, verbose=0)
    resident.fit(parts, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    assert mapped[1].readers and "MainThread" not in mapped[1].readers  # read ahead in the background
    np.testing.assert_allclose(streamed.predict(mapped), streamed.predict(parts), rtol=1e-12)
    assert streamed.evaluate(mapped, y) == pytest.approx(streamed.evaluate(parts, y), rel=1e-12)
    unshuffled = _two_input_model(device)
    unshuffled.fit(mapped, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    for got, want in zip(unshuffled.get_weights(), resident.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
