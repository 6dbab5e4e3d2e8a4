"""Data that is read a block at a time instead of copied in whole: NumPy memmaps and any array-like with ``shape``,
``dtype``, ``__len__`` and slice ``__getitem__`` (h5py and zarr datasets, Dask arrays).

``fit``, ``evaluate`` and ``predict`` wrap such data in :class:`StreamedRows`. Rows are read one block of about
``BLOCK_BYTES`` at a time, converted to the model's dtype and checked (NaN and infinity, naming the row) as they are
read, while a background thread reads the next block (through the backend's :meth:`row_reader`: on the GPU, pinned
host memory and a copy stream beside the computation). Training shuffles by block, then within the block: each epoch
visits the blocks in a fresh random order and each block's rows in a fresh random order; blocks hold whole batches,
so every batch but the data's last is full (data that fits in memory is shuffled exactly, as before).
"""

from __future__ import annotations

import concurrent.futures

from netcore.errors import ShapeError

#: Rows per block: about this many bytes of the model's dtype (a few blocks are in memory at once).
BLOCK_BYTES = 32 * 2**20
_PROTOCOL = ("shape", "dtype", "__len__", "__getitem__")


def check_protocol(source, what: str) -> None:
    """Refuse an array-like that cannot be read a block at a time, naming what it lacks."""
    missing = [name for name in _PROTOCOL if not hasattr(source, name)]
    if missing:
        raise ShapeError(
            f"{what} ({type(source).__name__}) cannot be read a block at a time: it has no {', '.join(missing)}; "
            "pass a NumPy array, a memmap, or an array-like with shape, dtype, __len__ and slicing"
        )
    if len(source.shape) < 1 or len(source) != source.shape[0]:
        raise ShapeError(f"{what} has len {len(source)} but shape {tuple(source.shape)}")


class StreamedRows:
    """Rows ``[start, stop)`` of ``source`` as the model reads them: :meth:`read` returns a checked device array in
    the model's dtype. Slicing gives another view of the rows, without reading them."""

    def __init__(self, model, source, what: str = "X", start: int = 0, stop: int | None = None):
        self.model, self.source, self.what = model, source, what
        self.start, self.stop = start, source.shape[0] if stop is None else stop
        sample = tuple(source.shape[1:]) or (1,)  # a 1-D source is one feature per row, as for arrays
        self.shape = (self.stop - self.start, *sample)
        self.ndim = len(self.shape)
        self.dtype = model.dtype
        row_bytes = max(1, model.backend.float_dtype(model.dtype_name).itemsize * _product(sample))
        self.block_rows = max(1, BLOCK_BYTES // row_bytes)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("streamed rows take contiguous slices only")
        a, b, _ = key.indices(len(self))
        return StreamedRows(self.model, self.source, self.what, self.start + a, self.start + max(a, b))

    def read(self, a: int, b: int, reader=None):
        """Rows ``[a, b)`` as a new device array of the model's dtype, checked for NaN and infinity (through
        ``reader``, the backend's :meth:`row_reader`, made in the computing thread)."""
        backend = self.model.backend
        reader = reader or backend.row_reader()
        with reader.scope():
            rows = reader.load(self.source[self.start + a : self.start + b], self.dtype)
            rows = rows.reshape(b - a, *self.shape[1:])
            if not backend.all_finite(rows):
                bad = self.start + a + first_bad_row(backend, rows)
                raise ShapeError(f"{self.what} contains NaN or infinity (first in row {bad})")
        return rows

    def blocks(self, rows_per_block: int, order=None):
        """``(a, b, rows)`` for each block of ``rows_per_block`` rows, in ``order`` (block numbers; default: in
        turn); the next block is read by a background thread while the caller works on this one."""
        starts = list(range(0, len(self), rows_per_block))
        order = range(len(starts)) if order is None else order
        spans = [(starts[k], min(starts[k] + rows_per_block, len(self))) for k in order]
        reader = self.model.backend.row_reader()
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netcore-reader") as reader_thread:
            pending = reader_thread.submit(self.read, *spans[0], reader) if spans else None
            for i, (a, b) in enumerate(spans):
                rows = pending.result()
                pending = reader_thread.submit(self.read, *spans[i + 1], reader) if i + 1 < len(spans) else None
                yield a, b, rows

    def block_count(self, rows_per_block: int) -> int:
        return -(-len(self) // rows_per_block)


def _product(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def is_streamed(X) -> bool:
    return isinstance(X, StreamedRows)


def first_bad_row(backend, array) -> int:
    """Index of the first row holding NaN or infinity (only called once a problem is known)."""
    bad = ~backend.xp.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    return int(bad.argmax())


def blocks(sources: list, rows_per_block: int, order=None):
    """``(a, b, [rows of each source])`` block by block, for several sources of the same rows (a model's inputs):
    streamed sources are read ahead in the background, the others are sliced."""
    streamed = [s for s in sources if is_streamed(s)]
    readers = [s.blocks(rows_per_block, order) for s in streamed]
    for parts in zip(*readers, strict=True):
        a, b = parts[0][0], parts[0][1]
        read = iter(part[2] for part in parts)
        yield a, b, [next(read) if is_streamed(s) else s[a:b] for s in sources]
