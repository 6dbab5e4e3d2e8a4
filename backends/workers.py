"""A few threads that share the calling thread's work: the CPU backend's way of putting every core on a layer.

Compiled kernels and single-threaded BLAS calls release the GIL, so blocks of one batch run side by side on plain
Python threads. Nothing spins: an idle worker blocks on its queue, so no core is taken from BLAS or from another
library's pool between calls (a spinning second pool beside OpenBLAS's made steps several times slower).
"""

from __future__ import annotations

import os
import queue
import threading


def usable_cores() -> int:
    """The cores this process may run on (a container's or a scheduler's share, where the OS says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Workers:
    """``count - 1`` daemon threads; :meth:`map` runs a function over items on them and on the calling thread. Not
    re-entrant: a function that :meth:`map` runs must not call :meth:`map` of the same workers."""

    def __init__(self, count: int):
        self.count = count
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(count - 1):
            threading.Thread(target=self._serve, name=f"netcore-worker-{index}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            function, items = self._tasks.get()
            try:
                for item in items:
                    function(item)
                self._done.put(None)
            except BaseException as exc:  # handed to the caller, which raises it
                self._done.put(exc)
            function = items = None  # an idle worker keeps no block's closure (nor what it refers to) alive

    def map(self, function, items: list) -> None:
        """``function(item)`` for every item, the items dealt round-robin over the threads; returns when all are
        done and raises the first exception any of them raised."""
        shares = [items[k :: self.count] for k in range(self.count)]
        handed = [share for share in shares[1:] if share]
        for share in handed:
            self._tasks.put((function, share))
        failure = None
        try:
            for item in shares[0]:
                function(item)
        except BaseException as exc:
            failure = exc
        for _ in handed:
            result = self._done.get()
            failure = failure or result
        if failure is not None:
            raise failure
