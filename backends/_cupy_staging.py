"""Streamed rows onto the GPU beside the computation: each block is read and converted into page-locked host memory,
then copied and checked on a stream of its own while the computing stream runs the steps of the block before."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from backends.arrays import RowReader


class PinnedRowReader(RowReader):
    """One reader's blocks through one pinned staging buffer (grown to the largest block, refilled block after block)
    and one non-blocking copy stream. Made in the computing thread, whose current stream it remembers: each copy
    first waits for the work queued there so far, since the new block's memory may be a finished block's that this
    work still reads."""

    def __init__(self, backend):
        super().__init__(backend)
        cuda = backend.xp.cuda
        with backend.device:
            self.computing = cuda.get_current_stream()
            self.copying = cuda.Stream(non_blocking=True)
        self.staging = None

    @contextlib.contextmanager
    def scope(self):
        with self.backend.device, self.copying:  # the copy and the checks after it run on the copy stream
            yield

    def load(self, rows, dtype):
        xp = self.backend.xp
        shape, dtype = tuple(rows.shape), np.dtype(dtype)
        host = self._staged(shape, dtype)
        host[...] = np.asarray(rows)  # the read and the conversion, in one pass
        queued = xp.cuda.Event()
        queued.record(self.computing)
        self.copying.wait_event(queued)
        out = xp.empty(shape, dtype)
        out.set(host, stream=self.copying)
        self.copying.synchronize()  # the staging buffer is refilled next: this thread waits, the steps do not
        return out

    def _staged(self, shape, dtype):
        import cupyx

        size = dtype.itemsize * math.prod(shape)
        if self.staging is None or self.staging.size < size:
            self.staging = cupyx.empty_pinned((size,), dtype=np.uint8)
        return self.staging[:size].view(dtype).reshape(shape)
