"""Data-parallel training over MPI, run for real: each test starts ``mpiexec -n 2`` on ``worker.py`` (or the
command line) and reads what the ranks print and write. Skipped where mpi4py or mpiexec is missing."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import netcore

pytest.importorskip("mpi4py")
HERE = pathlib.Path(__file__).resolve().parent
MPIEXEC = shutil.which("mpiexec", path=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (install the extra: pip install 'netcore-nn[mpi]')")
DEVICES = ["numpy", "numba"]
#: Seconds after which a job is taken to hang: a guard, not a speed expectation (a dead rank must end the job by
#: netcore's own collective timeouts, seconds; these tests assert that it does, not how fast).
HANG = 600


def launch(args, ranks: int = 2, timeout: float = HANG, **env) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks`` on ``args``, one thread per rank; a hang fails the test instead of the suite."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", **env}
    command = [MPIEXEC, "-n", str(ranks), *args] if ranks else list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def worker(scenario: str, device: str, out, ranks: int = 2, **kw) -> subprocess.CompletedProcess:
    return launch([sys.executable, str(HERE / "worker.py"), scenario, device, str(out)], ranks, **kw)


def weights(path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files) - ("loss" in saved.files))]


def relative_error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max() / np.abs(y).max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("device", DEVICES)
def test_two_ranks_take_the_steps_of_one_process(tmp_path, device):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    alone = worker("train", device, one, ranks=0)
    assert alone.returncode == 0, alone.stderr
    job = worker("train", device, two)
    assert job.returncode == 0, job.stderr
    assert job.stdout.count("of 2: trained") == 2
    reference = weights(one / "rank0.npz")
    for rank in (0, 1):
        assert relative_error(weights(two / f"rank{rank}.npz"), reference) <= 1e-10
        assert np.allclose(np.load(two / f"rank{rank}.npz")["loss"], np.load(one / "rank0.npz")["loss"], rtol=1e-10)
    # The writing callbacks ran once: one header and three epochs in the log, one checkpoint
    assert len((two / "log.csv").read_text().splitlines()) == 4
    assert (two / "best.ncz").exists()


@pytest.mark.parametrize("device", DEVICES)
def test_synchronised_batch_norm_matches_one_process(tmp_path, device):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    assert worker("batchnorm", device, one, ranks=0).returncode == 0
    job = worker("batchnorm", device, two)
    assert job.returncode == 0, job.stderr
    reference = weights(one / "rank0.npz")  # weights, then the running statistics
    for rank in (0, 1):
        assert relative_error(weights(two / f"rank{rank}.npz"), reference) <= 1e-10


def test_a_graph_model_on_two_ranks_takes_the_steps_of_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    alone = worker("graph", "numba", one, ranks=0)
    assert alone.returncode == 0, alone.stderr
    job = worker("graph", "numba", two)
    assert job.returncode == 0, job.stderr
    reference = weights(one / "rank0.npz")
    for rank in (0, 1):
        assert relative_error(weights(two / f"rank{rank}.npz"), reference) <= 1e-10
        assert np.allclose(np.load(two / f"rank{rank}.npz")["loss"], np.load(one / "rank0.npz")["loss"], rtol=1e-10)


def test_the_cupy_backend_sums_on_the_device_through_nccl(tmp_path):
    """On the CPU stand-in for CuPy, whose NCCL sums host memory over MPI: the steps of one process, and every sum
    (gradients, synchronised batch-norm statistics) went through NCCL."""
    from tests.backends.cupy_on_cpu import COMPILER

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    alone = worker("nccl", "cupy", one, ranks=0)
    assert alone.returncode == 0, alone.stderr
    assert "with 0 NCCL sums" in alone.stdout  # a job of one sums nothing
    job = worker("nccl", "cupy", two)
    assert job.returncode == 0, job.stderr
    steps = 2 * -(-1437 // 40)  # gradients once, batch norm 2 forward + 1 backward, per step
    assert job.stdout.count(f"with {4 * steps} NCCL sums") == 2, job.stdout
    reference = weights(one / "rank0.npz")
    for rank in (0, 1):
        assert relative_error(weights(two / f"rank{rank}.npz"), reference) <= 1e-10


def test_a_nan_on_one_rank_stops_every_rank_with_the_same_error(tmp_path):
    job = worker("nan", "numpy", tmp_path)
    assert job.returncode == 0, job.stderr
    messages = {line.split(":", 1)[1] for line in job.stdout.splitlines() if line.startswith("rank ")}
    assert job.stdout.count("DivergenceError") == 2
    assert len(messages) == 1 and "nan" in messages.pop()  # the same message on both ranks


def test_disagreeing_ranks_are_refused_on_every_rank(tmp_path):
    job = worker("disagree", "numpy", tmp_path)
    assert job.returncode == 0, job.stderr
    assert job.stdout.count("ConfigurationError") == 2
    assert job.stdout.count("ranks [1] differ from rank 0 (layers)") == 2


@pytest.mark.parametrize("how", ["crash", "exit", "hang", "raise"])
def test_a_dead_rank_ends_the_job_instead_of_hanging(tmp_path, how):
    """Rank 1 leaves mid-training: it crashes, exits, hangs, or raises an exception nobody catches. The job ends
    with an error after the 3-second collective timeout plus the 5-second end-of-job handshake, not at the hang
    guard (the bound below is that difference, generous for a loaded machine, not a speed expectation)."""
    started = time.monotonic()
    job = worker(how, "numpy", tmp_path)
    elapsed = time.monotonic() - started
    assert job.returncode != 0
    assert "finished" not in job.stdout
    expected = {"crash": "", "exit": "DistributedError", "hang": "DistributedError", "raise": "rank 1 fails alone"}
    assert expected[how] in job.stderr
    assert elapsed < HANG / 2


def test_the_command_line_trains_digits_on_two_ranks(tmp_path):
    job = launch(["netcore", "train", "--dataset", "digits", "--distributed", "--json"])
    assert job.returncode == 0, job.stderr
    lines = job.stdout.strip().splitlines()
    assert len(lines) == 1  # rank 0 alone prints
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["test_accuracy"] >= 0.97


def test_the_command_line_reports_a_collective_failure_once(tmp_path):
    """Both ranks refuse a batch too small for batch norm on every share: one message, no abort."""
    command = ["netcore", "train", "--dataset", "iris", "--batchnorm", "--batch-size", "3", "--distributed"]
    job = launch(command)
    assert job.returncode == 2
    assert job.stderr.count("netcore: error:") == 1 and "batch_size 3" in job.stderr


def test_a_failure_on_rank_0_alone_ends_the_job(tmp_path):
    """Rank 0 alone checks --save: it fails, the other rank is waiting for it, so the job is aborted."""
    command = ["netcore", "train", "--dataset", "iris", "--distributed", "--save", str(tmp_path / "no" / "m.ncz")]
    job = launch(command)
    assert job.returncode != 0
    assert "error on rank 0" in job.stderr and "does not exist" in job.stderr


def test_a_single_process_is_a_job_of_one(tmp_path):
    data = netcore.datasets.load("iris", seed=0)

    def trained(distributed: bool):
        model = netcore.Sequential(
            [netcore.layers.Dense(8, "relu"), netcore.layers.Dense(3, "softmax")], input_dim=4, seed=1
        )
        model.compile("adam", "cross_entropy")
        model.fit(data.X_train, data.y_train, epochs=3, batch_size=16, verbose=0, distributed=distributed)
        return model.get_weights()

    context = netcore.distributed.init()
    assert (context.rank, context.size, context.is_main) == (0, 1, True)
    assert netcore.distributed.init() is context
    assert relative_error(trained(True), trained(False)) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_a_rank_limits_its_threads_to_its_share_of_the_cores(device):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    numba = pytest.importorskip("numba")
    backend = netcore.Sequential([netcore.layers.Dense(1)], input_dim=1, device=device).backend
    before = (threadpoolctl.threadpool_info(), numba.get_num_threads())
    try:
        backend.limit_threads(1)
        assert all(pool["num_threads"] == 1 for pool in threadpoolctl.threadpool_info())
        if device == "numba":
            assert numba.get_num_threads() == 1
    finally:
        for pool in before[0]:
            threadpoolctl.threadpool_limits(limits=pool["num_threads"], user_api=pool["user_api"])
        numba.set_num_threads(before[1])


def test_distributed_training_without_mpi4py_names_the_extra(monkeypatch):
    from netcore import distributed

    monkeypatch.setattr(distributed, "_CONTEXT", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(netcore.BackendUnavailableError, match=r"netcore-nn\[mpi\]"):
        distributed.init()


def test_cuda_graphs_and_distributed_training_do_not_combine():
    model = netcore.Sequential([netcore.layers.Dense(2, "softmax")], input_dim=3)
    model.compile("sgd", "cross_entropy")
    with pytest.raises(netcore.ConfigurationError, match="do not combine"):
        model.fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]), cuda_graph=True, distributed=True, verbose=0)


def test_a_job_of_one_on_the_cupy_backend_takes_the_steps_of_plain_training(cupy_backend):
    """The device path of the data-parallel step (gradients through host buffers) on a job of one process."""
    data = netcore.datasets.load("iris", seed=0)

    def trained(distributed: bool):
        model = netcore.Sequential(
            [netcore.layers.Dense(8, "relu"), netcore.layers.BatchNorm(sync=True), netcore.layers.Dense(3, "softmax")],
            input_dim=4,
            device=cupy_backend,
            dtype="float64",
            seed=1,
        )
        model.compile("adam", "cross_entropy")
        model.fit(data.X_train, data.y_train, epochs=2, batch_size=16, verbose=0, distributed=distributed)
        return model.get_weights()

    assert relative_error(trained(True), trained(False)) < 1e-12
