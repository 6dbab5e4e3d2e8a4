"""Streaming against memory: one epoch of the W1 network over a float64 ``.npy`` file of ``--gib`` GiB, memory-mapped
and read a block at a time into a float32 model, against the same rows held in memory as float32. Each run is a fresh
process that reports its epoch time and its peak anonymous memory (RssAnon: what the process itself allocated, not
the file's pages in the page cache).

    python -m benchmarks.streaming --gib 4 --device numba
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

FEATURES, CLASSES = 784, 10


def write_file(path: str, gib: float, seed: int = 0) -> int:
    """A float64 ``.npy`` of about ``gib`` GiB (written in chunks: never all in memory) and its labels."""
    rows = int(gib * 2**30 // (FEATURES * 8))
    if os.path.exists(path) and np.load(path, mmap_mode="r").shape == (rows, FEATURES):
        return rows
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, FEATURES))
    for start in range(0, rows, 65536):
        out[start : start + 65536] = rng.standard_normal((min(65536, rows - start), FEATURES))
    out.flush()
    del out
    np.save(path.removesuffix(".npy") + "-labels.npy", rng.integers(0, CLASSES, rows))
    return rows


class PeakAnonymous:
    """Samples the process's RssAnon every few milliseconds in a background thread; ``peak`` in bytes."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def _one_run(path: str, mode: str, device: str) -> dict:
    """In a fresh process: one epoch over the file's rows, streamed or in memory."""
    import netcore
    from benchmarks.workloads import WORKLOADS

    labels = np.load(path.removesuffix(".npy") + "-labels.npy")
    mapped = np.load(path, mmap_mode="r")
    workload = WORKLOADS["W1"]
    model = netcore.Sequential(workload.netcore_layers(), input_shape=(FEATURES,), device=device, seed=0)
    model.compile(netcore.optimizers.Adam(lr=1e-3), "cross_entropy")
    model.fit(np.asarray(mapped[:1024], np.float32), labels[:1024], epochs=1, batch_size=workload.batch, verbose=0)
    with PeakAnonymous() as memory:
        baseline = memory.now()
        data = mapped if mode == "streamed" else np.asarray(mapped, dtype=np.float32)  # the copy streaming avoids
        started = time.perf_counter()
        model.fit(data, labels, epochs=1, batch_size=workload.batch, verbose=0)
        seconds = time.perf_counter() - started
    return {"mode": mode, "rows": len(labels), "seconds": seconds, "peak_rss_anon": memory.peak, "before": baseline}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=4.0, help="size of the float64 file")
    parser.add_argument("--path", default="streaming-benchmark.npy", help="where the file is written (kept)")
    parser.add_argument("--device", default="numba")
    parser.add_argument("--json", dest="json_path", help="write the results here")
    parser.add_argument("--run", choices=("streamed", "memory"), help=argparse.SUPPRESS)  # one measured process
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(_one_run(args.path, args.run, args.device)))
        return 0
    rows = write_file(args.path, args.gib)
    results = {}
    for mode in ("streamed", "memory", "streamed"):  # streamed twice: the first also warms the page cache
        command = [sys.executable, "-m", "benchmarks.streaming", "--path", args.path, "--device", args.device]
        job = subprocess.run([*command, "--run", mode], capture_output=True, text=True, check=True)
        results[mode] = json.loads(job.stdout.strip().splitlines()[-1])
    streamed, memory = results["streamed"], results["memory"]
    ratio = memory["seconds"] / streamed["seconds"]
    print(f"{rows} rows x {FEATURES} float64 ({os.path.getsize(args.path) / 2**30:.2f} GiB) into a float32 model")
    for name, run in (("streamed", streamed), ("in memory", memory)):
        print(f"  {name:9}  {run['seconds']:7.2f} s/epoch  peak RssAnon {run['peak_rss_anon'] / 2**20:7.0f} MiB")
    print(f"  throughput streamed / in memory: {ratio:.2f} (target >= 0.8); peak RssAnon target < 512 MiB")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"results": results, "throughput_ratio": ratio}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
