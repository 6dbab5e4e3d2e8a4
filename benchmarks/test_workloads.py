"""End-to-end benchmarks of the reference workloads: W1, W4 and W7 (one CPU epoch, beside PyTorch and the GEMMs at
their shapes), W6 (recurrent steps on the CPU), predict on one row and on 10,000 (infer), W2, W3 and W5 (GPU
steps)."""

from __future__ import annotations

import pytest

from benchmarks import contenders
from benchmarks.conftest import TINY
from benchmarks.workloads import WORKLOADS


def workload(name):
    w = WORKLOADS[name]
    if not TINY:
        return w
    if not w.is_mlp:
        return w.scaled(rows=128 if w.unit == "epoch" else None, batch=8)
    return w.scaled(rows=300 if w.unit == "epoch" else None, batch=32, hidden=(16, 8))


def run_contender(benchmark, setup, name):
    try:
        run = setup(workload(name), contenders.os_threads())
    except contenders.Skip as exc:
        pytest.skip(str(exc))
    if TINY:
        return benchmark.pedantic(run, rounds=1, iterations=1)
    return benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_w1_netcore_epoch(benchmark, device):
    run_contender(benchmark, contenders.netcore_runner(device), "W1")


def test_w1_pytorch_epoch(benchmark):
    pytest.importorskip("torch")
    run_contender(benchmark, contenders.torch_runner(), "W1")


@pytest.mark.parametrize("device", ["numpy", "numba"])
@pytest.mark.parametrize("name", ["W4", "W7"])
def test_cnn_netcore_epoch(benchmark, name, device):
    run_contender(benchmark, contenders.netcore_runner(device), name)


@pytest.mark.parametrize("name", ["W4", "W7"])
def test_cnn_pytorch_epoch(benchmark, name):
    pytest.importorskip("torch")
    run_contender(benchmark, contenders.torch_runner(), name)


@pytest.mark.parametrize("name", ["W1", "W4", "W7"])
def test_gemms_at_workload_shapes(benchmark, name):
    run_contender(benchmark, contenders.gemm_at_shapes_runner, name)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_w6_netcore_steps(benchmark, device, cell):
    run_contender(benchmark, lambda w, threads: contenders.netcore_runner(device)(w.with_cell(cell), threads), "W6")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_w6_pytorch_steps(benchmark, cell):
    pytest.importorskip("torch")
    run_contender(benchmark, lambda w, threads: contenders.torch_runner()(w.with_cell(cell), threads), "W6")


@pytest.mark.parametrize("case", ["1-row", "10000-rows"])
@pytest.mark.parametrize("contender", ["numba", "numpy", "pytorch", "plain numpy"])
def test_infer_predict_calls(benchmark, contender, case):
    setup = {
        "pytorch": contenders.torch_predict_runner,
        "plain numpy": contenders.plain_predict_runner,
    }.get(contender) or contenders.netcore_predict_runner(contender)
    if contender == "pytorch":
        pytest.importorskip("torch")
    run_contender(benchmark, lambda w, threads: setup(w.with_case(case), threads), "infer")


@pytest.mark.gpu
@pytest.mark.parametrize("workload_name", ["W2", "W3", "W5"])
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_gpu_netcore_steps(benchmark, workload_name, graph):
    run_contender(benchmark, contenders.netcore_runner("cupy", graph=graph), workload_name)


@pytest.mark.gpu
def test_w3_netcore_tf32_graph_steps(benchmark):
    run_contender(benchmark, contenders.netcore_runner("cupy", graph=True, tf32=True), "W3")


@pytest.mark.gpu
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_w5_pytorch_steps(benchmark, graph):
    pytest.importorskip("torch")
    run_contender(benchmark, contenders.torch_runner(graph=graph), "W5")
