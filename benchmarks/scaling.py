"""Data-parallel scaling: the throughput of N processes training one model with ``fit(distributed=True)`` against
one process, each process given one BLAS thread (``netcore bench --workload W1 --processes 2``).

Both jobs run the same script under ``mpiexec`` (one rank, then N), side by side in one invocation; each trains
``repeats + 1`` epochs of the workload and reports the median epoch time after the first (the warm-up: compilation
and buffers). Throughput is rows per second, so the speed-up is the one-process epoch time over the N-process one.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys

from netcore.errors import BackendUnavailableError, ConfigurationError


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (the ``mpi`` extra installs MPICH there), else the one on the PATH."""
    found = shutil.which("mpiexec", path=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if found is None:
        raise BackendUnavailableError("--processes needs mpiexec; install it with: pip install 'netcore-nn[mpi]'")
    return found


def epoch_times(workload, processes: int, repeats: int, device: str, timeout: float) -> list[float]:
    """Epoch times (seconds, after the warm-up) of ``processes`` ranks training ``workload`` together."""
    command = [mpiexec(), "-n", str(processes), sys.executable, "-m", "benchmarks.scaling"]
    command += [workload.name, str(workload.rows), str(repeats), device]
    one_thread = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    environment = {**os.environ, **one_thread, "NUMBA_NUM_THREADS": "1", "NETCORE_THREADS_PER_RANK": "1"}
    root = pathlib.Path(__file__).resolve().parents[1]
    job = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=root)
    if job.returncode != 0:
        raise ConfigurationError(f"the {processes}-process run failed: {job.stderr.strip()[-2000:]}")
    return json.loads(job.stdout.strip().splitlines()[-1])["epoch_times"]


def measure_scaling(workload, processes: int, repeats: int, device: str = "numba", log=print) -> dict:
    if workload.unit != "epoch":
        raise ConfigurationError(f"--processes measures CPU epochs (W1, W4), not {workload.name}")
    if processes < 2:
        raise ConfigurationError("--processes needs at least 2 processes to compare with one")
    timeout = 600 + 60 * repeats
    log(f"  {workload.name} on {device}: 1 process")
    one = epoch_times(workload, 1, repeats, device, timeout)
    log(f"  {workload.name} on {device}: {processes} processes")
    many = epoch_times(workload, processes, repeats, device, timeout)
    speedup = statistics.median(one) / statistics.median(many)
    return {
        "workload": workload.name,
        "device": device,
        "rows": workload.rows,
        "processes": processes,
        "epoch_times": {"1": one, str(processes): many},
        "throughput_ratio": speedup,
        "efficiency": speedup / processes,
        "target_ratio": 0.85 * processes,
    }


def format_scaling(report: dict) -> str:
    n = report["processes"]
    one, many = (statistics.median(report["epoch_times"][k]) for k in ("1", str(n)))
    rows = report["rows"]
    lines = [
        f"{report['workload']} data-parallel on {report['device']}, one BLAS thread per process, {rows} rows/epoch",
        f"{'processes':>9} {'s/epoch':>9} {'rows/s':>10}",
        f"{1:>9} {one:>9.3f} {rows / one:>10.0f}",
        f"{n:>9} {many:>9.3f} {rows / many:>10.0f}",
        f"throughput ratio {report['throughput_ratio']:.2f} (target >= {report['target_ratio']:.2f}), "
        f"efficiency {report['efficiency']:.0%}",
    ]
    return "\n".join(lines)


def _rank_main(name: str, rows: int, repeats: int, device: str) -> None:
    """One rank of a measured job: train, then rank 0 prints the epoch times as JSON."""
    import netcore
    from benchmarks.workloads import WORKLOADS

    workload = WORKLOADS[name].scaled(rows=rows)
    ctx = netcore.distributed.init()
    model = netcore.Sequential(workload.netcore_layers(), input_shape=workload.input_shape, device=device, seed=0)
    model.compile(netcore.optimizers.Adam(lr=1e-3), "cross_entropy")
    X, y = workload.data()
    history = model.fit(X, y, epochs=repeats + 1, batch_size=workload.batch, verbose=0, distributed=True)
    if ctx.is_main:
        print(json.dumps({"epoch_times": history["epoch_time"][1:]}))


if __name__ == "__main__":
    _rank_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
