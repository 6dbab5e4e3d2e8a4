"""Smoke test of the benchmark suite and the comparison harness: every benchmark runs once at a tiny size."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_benchmark_runs_once_at_tiny_size():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", "--benchmark-disable", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NETCORE_BENCH_SIZE": "tiny"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


def test_compare_harness_prints_a_table_and_writes_json(tmp_path):
    out = tmp_path / "w1.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "netcore",
            "bench",
            "--workload",
            "W1",
            "--rows",
            "600",
            "--repeats",
            "1",
            "--only",
            "netcore numba,netcore numpy,gemm at workload shapes",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "netcore numba" in result.stdout and "x floor" in result.stdout
    report = json.loads(out.read_text())
    names = {row["name"] for row in report["results"]}
    assert {"netcore numba", "netcore numpy", "gemm at workload shapes"} <= names
    assert report["gemm_floor_s"] > 0 and all(row["median_s"] > 0 for row in report["results"])


def test_sweep_varies_batch_and_width_for_the_chosen_contenders(tmp_path, monkeypatch, capsys):
    from benchmarks import compare, contenders

    monkeypatch.setattr(compare, "PAUSE", 0.0)
    monkeypatch.setattr(contenders, "square_gemm_rate", lambda workload: 1e11)
    args = compare.build_parser().parse_args(
        ["--rows", "256", "--repeats", "1", "--only", "netcore numpy", "--sweep", "--plot", str(tmp_path / "w1.png")]
    )
    assert compare.run(args) == 0
    assert (tmp_path / "w1-sweep.png").stat().st_size > 0 and (tmp_path / "w1.png").stat().st_size > 0
    assert "sweep plot written" in capsys.readouterr().out
    points = compare.sweep(compare.WORKLOADS["W1"].scaled(rows=256), 1, ["netcore numpy"], log=lambda *_: None)
    batches = sorted(p["batch"] for p in points if p["hidden"] == [512, 256])
    assert batches == [32, 64, 128, 256, 512]
    widths = sorted(p["gflop"] for p in points if p["batch"] == 128)
    assert len(widths) == 4 and widths == sorted(set(widths))
    for point in points:  # only what --only chose, beside the GEMMs at the point's shapes
        assert set(point["results"]) == {"netcore numpy", "gemm at workload shapes"}


def test_tf32_rows_are_compared_with_pytorch_in_tf32():
    from benchmarks.compare import _pytorch_reference

    times = {"pytorch eager": [2.0, 4.0, 3.0], "pytorch eager tf32": [1.0], "netcore cupy graph tf32": [0.5]}
    assert _pytorch_reference("netcore cupy graph tf32", times) == 1.0
    assert _pytorch_reference("netcore cupy graph", times) == 3.0
    assert _pytorch_reference("netcore numba", {"pytorch": [2.0]}) == 2.0
    assert _pytorch_reference("netcore numba", {}) is None


def test_ratios_come_from_medians_and_from_the_fastest_runs(monkeypatch):
    import time

    from benchmarks import compare, contenders
    from benchmarks.workloads import WORKLOADS

    durations = {
        "pytorch": [0.02, 0.06, 0.04],
        "netcore numba": [0.01, 0.05, 0.03],
        "gemm at workload shapes": [0.01] * 3,
    }

    def scripted(name):
        def setup(workload, threads):
            remaining = list(durations[name])
            return lambda: time.sleep(remaining.pop(0))

        return setup

    monkeypatch.setattr(compare, "contender_table", lambda workload: {name: scripted(name) for name in durations})
    monkeypatch.setattr(compare, "PAUSE", 0.0)
    monkeypatch.setattr(contenders, "square_gemm_rate", lambda workload: 1e9)
    report = compare.measure(WORKLOADS["W1"].scaled(rows=256), repeats=3, log=lambda *_: None)
    ours = {row["name"]: row for row in report["results"]}["netcore numba"]
    assert abs(ours["vs_pytorch"] - 0.03 / 0.04) < 0.1 and abs(ours["best_vs_pytorch"] - 0.01 / 0.02) < 0.1
    assert abs(ours["vs_gemm_at_shapes"] - 3) < 0.5 and abs(ours["best_vs_gemm_at_shapes"] - 1) < 0.3
    assert "best:" in compare.format_table(report)


def test_a_run_where_every_contender_skips_reports_the_reasons(monkeypatch):
    from benchmarks import compare, contenders
    from benchmarks.workloads import WORKLOADS

    def cannot(workload, threads):
        raise contenders.Skip("not here")

    monkeypatch.setattr(compare, "contender_table", lambda workload: {"absent": cannot})
    report = compare.measure(WORKLOADS["W1"].scaled(rows=256), repeats=2, log=lambda *_: None)
    assert report["results"] == [] and report["skipped"] == {"absent": "not here"}
    assert "contender" in compare.format_table(report)


def test_gpu_workload_tables_on_the_cupy_stand_in(monkeypatch):
    import pytest

    from benchmarks import compare, contenders
    from benchmarks.workloads import WORKLOADS
    from tests.backends.cupy_on_cpu import COMPILER, cupy_on_cpu

    if COMPILER is None:
        pytest.skip("no C++ compiler to build the CuPy kernels for the CPU")
    square = contenders.square_gemm_rate
    monkeypatch.setattr(contenders, "square_gemm_rate", lambda workload: square(workload, size=128, repeats=2))
    monkeypatch.setattr(contenders, "GPU_BLOCK", 3)
    with cupy_on_cpu():
        for name in ("W2", "W3"):
            workload = WORKLOADS[name].scaled(batch=8, hidden=(16, 8))
            report = compare.measure(workload, repeats=1, log=lambda *_: None)
            rows = {row["name"]: row for row in report["results"]}
            expected = {"netcore cupy", "netcore cupy graph", "netcore cupy graph tf32", "plain cupy"}
            assert expected | {"netcore cupy fit", "netcore cupy fit graph"} <= set(rows)
            assert "gemm at workload shapes" in rows and report["unit"] == "step"
            assert all(row["median_s"] > 0 and row["vs_floor"] > 0 for row in rows.values())
            assert "PyTorch sees no CUDA device" in report["skipped"]["pytorch eager"]
            assert "ms/step" in compare.format_table(report)
        report = compare.measure(WORKLOADS["W5"].scaled(batch=2), repeats=1, log=lambda *_: None)
        rows = {row["name"]: row for row in report["results"]}
        assert {"netcore cupy", "netcore cupy graph", "netcore cupy fit graph", "gemm at workload shapes"} <= set(rows)
        assert "hand-written baseline is an MLP" in report["skipped"]["plain cupy"]
        assert "conv64x3+pool2" in compare.format_table(report)


def test_w4_lenet_table_beside_pytorch(tmp_path):
    out = tmp_path / "w4.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "netcore",
            "bench",
            "--workload",
            "W4",
            "--rows",
            "256",
            "--repeats",
            "1",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "w4.png"),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["results"]}
    assert {"netcore numba", "netcore numpy", "gemm at workload shapes"} <= set(rows)
    assert "no convolutional networks" in report["skipped"]["scikit-learn"]
    assert report["sizes"][:2] == ["28x28x1", "conv6x5+pool2"] and (tmp_path / "w4.png").stat().st_size > 0


def test_w4_counts_lenets_products():
    from benchmarks.workloads import WORKLOADS

    w4 = WORKLOADS["W4"]
    forward = 28 * 28 * 25 * 6 + 10 * 10 * 150 * 16 + 400 * 120 + 120 * 84 + 84 * 10  # multiply-adds per image
    first_input_gradient = 28 * 28 * 25 * 6  # the input needs no gradient
    assert w4.flops() == 2 * (3 * forward - first_input_gradient) * 60_000
    assert len(w4.netcore_layers()) == 8 and w4.steps == 938


def test_w6_compares_each_recurrent_cell_with_its_pytorch_twin(tmp_path, monkeypatch):
    from benchmarks import compare, contenders
    from benchmarks.workloads import WORKLOADS

    monkeypatch.setattr(compare, "PAUSE", 0.0)
    monkeypatch.setattr(contenders, "square_gemm_rate", lambda workload: 1e11)
    workload = WORKLOADS["W6"].scaled(rows=32, batch=16)
    names = ["netcore numba gru", "pytorch gru", "netcore numpy rnn", "gemm at workload shapes rnn"]
    report = compare.measure(workload, names, repeats=1, log=lambda *_: None)
    rows = {row["name"]: row for row in report["results"]}
    assert report["unit"] == "step" and set(rows) == set(names)
    assert rows["netcore numba gru"]["vs_pytorch"] > 0 and rows["netcore numpy rnn"]["vs_pytorch"] is None
    assert rows["netcore numpy rnn"]["vs_gemm_at_shapes"] > 0 and rows["netcore numba gru"]["vs_gemm_at_shapes"] is None
    assert "ms/step" in compare.format_table(report)
    lstm, gru = WORKLOADS["W6"], WORKLOADS["W6"].with_cell("gru")
    assert lstm.flops() / gru.flops() == pytest.approx(4 / 3, rel=0.01)  # gate blocks: 4 against 3


def test_w7_counts_its_products_and_builds_both_networks():
    torch = pytest.importorskip("torch")
    from benchmarks.workloads import WORKLOADS

    w7 = WORKLOADS["W7"]
    forward = 32 * 32 * (27 * 32 + 288 * 32) + 16 * 16 * (288 * 64 + 576 * 64) + 8 * 8 * 64 * 256 + 256 * 10
    first_input_gradient = 32 * 32 * 27 * 32
    assert w7.flops() == 2 * (3 * forward - first_input_gradient) * 10_000
    assert w7.steps == 79 and len(w7.netcore_layers()) == 9
    images = torch.zeros((2, 3, 32, 32))
    assert tuple(w7.torch_module(torch)(images).shape) == (2, 10)


def test_inference_times_each_case_per_call(monkeypatch):
    import time

    from benchmarks import compare, contenders
    from benchmarks.workloads import WORKLOADS

    calls = {}

    def counted(name, seconds):
        def setup(workload, threads):
            def run():
                for _ in range(workload.steps):
                    time.sleep(seconds)
                calls[name] = workload.steps

            return run

        return setup

    monkeypatch.setattr(compare, "PAUSE", 0.0)
    monkeypatch.setattr(contenders, "square_gemm_rate", lambda workload: 1e11)
    monkeypatch.setattr(contenders, "netcore_predict_runner", lambda device: counted(device, 0.004))
    monkeypatch.setattr(contenders, "plain_predict_runner", counted("plain", 0.002))
    monkeypatch.setattr("benchmarks.workloads.INFERENCE_CASES", {"1-row": (1, 5), "10000-rows": (10_000, 20_000)})
    names = ["netcore numba 1-row", "plain numpy 1-row", "netcore numba 10000-rows", "plain numpy 10000-rows"]
    report = compare.measure(WORKLOADS["infer"], names, repeats=2, log=lambda *_: None)
    rows = {row["name"]: row for row in report["results"]}
    assert report["unit"] == "call" and set(rows) == set(names)
    assert rows["netcore numba 1-row"]["median_s"] == pytest.approx(0.004, rel=0.25)  # per call, not per run
    assert rows["netcore numba 1-row"]["vs_plain_numpy"] == pytest.approx(2, rel=0.25)
    assert rows["plain numpy 10000-rows"]["vs_plain_numpy"] == 1
    assert "us/call" in compare.format_table(report) and "x plain numpy" in compare.format_table(report)


def test_inference_table_runs_every_contender(tmp_path):
    out = tmp_path / "infer.json"
    command = [sys.executable, "-m", "netcore", "bench", "--workload", "infer", "--repeats", "1", "--json", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["results"]}
    for case in ("1-row", "10000-rows"):
        for contender in ("netcore numba", "netcore numpy", "plain numpy", "gemm at workload shapes"):
            assert rows[f"{contender} {case}"]["median_s"] > 0
