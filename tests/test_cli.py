"""The command line: the devices table, training with --json, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netcore.cli import main


def netcore_cmd(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "netcore", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


def test_devices_table(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "numba" in out and "cupy" in out


@pytest.mark.slow
@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_train_digits_json(device):
    result = netcore_cmd("train", "--dataset", "digits", "--device", device, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"] == device and report["dataset"] == "digits"
    assert report["test_accuracy"] >= 0.97
    assert {"epochs", "train_loss", "seconds"} <= set(report)


def test_environment_chooses_the_device():
    result = netcore_cmd("train", "--dataset", "iris", "--epochs", "2", "--json", env={"NETCORE_DEVICE": "numba"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["device"] == "numba"


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--device", "nonsense"],
        ["train", "--hidden", "0"],
        ["train", "--lr", "-1"],
        ["train", "--epochs", "zero"],
        ["train", "--dropout", "1.5"],
        ["train", "--dataset", "nope"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args):
    result = netcore_cmd(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_save_plot_then_evaluate_predict_and_summary(tmp_path):
    model, picture = tmp_path / "m.ncz", tmp_path / "h.png"
    result = netcore_cmd(
        "train",
        "--dataset",
        "digits",
        "--hidden",
        "128,64",
        "--dropout",
        "0.2",
        "--batchnorm",
        "--early-stopping",
        "5",
        "--save",
        str(model),
        "--plot",
        str(picture),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["test_accuracy"] >= 0.97 and model.stat().st_size > 0 and picture.stat().st_size > 10_000
    evaluated = netcore_cmd("evaluate", str(model), "--dataset", "digits", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["test_accuracy"] == trained["test_accuracy"]
    summary = netcore_cmd("summary", str(model))
    assert summary.returncode == 0 and "batchnorm (BatchNorm)" in summary.stdout


def test_csv_train_and_predict(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    lines = ["f0,f1,f2,label"] + [f"{a:.4f},{b:.4f},{c:.4f},{lab}" for (a, b, c), lab in zip(X, label, strict=True)]
    data = tmp_path / "d.csv"
    data.write_text("\n".join(lines))
    model = tmp_path / "m.ncz"
    result = netcore_cmd(
        "train",
        "--csv",
        str(data),
        "--target",
        "label",
        "--hidden",
        "16",
        "--epochs",
        "40",
        "--lr",
        "0.01",
        "--save",
        str(model),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["test_accuracy"] >= 0.85
    new = tmp_path / "new.csv"
    new.write_text("f0,f1,f2\n3,3,0\n-3,-3,0\n")
    predicted = netcore_cmd("predict", str(model), "--csv", str(new))
    assert predicted.returncode == 0, predicted.stderr
    rows = predicted.stdout.strip().splitlines()
    assert rows[0] == "prediction,p_down,p_up" and rows[1].startswith("up,") and rows[2].startswith("down,")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--csv", "missing.csv", "--target", "y"],
        ["train", "--csv", "x.csv"],
        ["evaluate", "missing.ncz"],
        ["summary", "missing.ncz"],
        ["predict", "missing.ncz", "--csv", "x.csv"],
        ["train", "--early-stopping", "0"],
        ["train", "--l2", "-1"],
        ["bench", "--workload", "W9"],
        ["bench", "--workload", "W1", "--only", "netcore numba,nobody"],
    ],
)
def test_more_error_paths_exit_2_with_one_line(args):
    result = netcore_cmd(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_csv_errors_name_the_file_first_then_the_columns(tmp_path):
    missing = netcore_cmd("train", "--csv", str(tmp_path / "missing.csv"))
    assert missing.returncode == 2 and "missing.csv" in missing.stderr and "No such file" in missing.stderr
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n1,2,0\n3,4,1\n")
    untargeted = netcore_cmd("train", "--csv", str(table))
    assert untargeted.returncode == 2 and "columns: a, b, label" in untargeted.stderr


def test_gpu_benchmark_without_a_gpu_is_a_one_line_error():
    from backends.registry import backend_class

    if backend_class("cupy").unavailable_reason() is None:
        pytest.skip("a usable GPU is present: W3 would really run")
    result = netcore_cmd("bench", "--workload", "W3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "W3 runs on a CUDA GPU" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", ["--save", "--plot"])
def test_unwritable_outputs_are_refused_before_training(tmp_path, flag):
    result = netcore_cmd("train", "--dataset", "digits", flag, str(tmp_path / "missing" / "out"), "--epochs", "50")
    assert result.returncode == 2 and "does not exist" in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_on_the_cupy_device_in_process(cupy_backend, capsys, tmp_path):
    model = tmp_path / "m.ncz"
    train = ["train", "--dataset", "iris", "--device", "cupy", "--epochs", "40", "--json", "--save", str(model)]
    assert main(train) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cupy" and result["test_accuracy"] >= 0.9
    assert main(["evaluate", str(model), "--device", "numpy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == result["test_accuracy"]


def test_train_with_cuda_graphs_on_the_cupy_device(cupy_backend, capsys):
    train = ["train", "--dataset", "digits", "--device", "cupy", "--epochs", "15", "--json", "--cuda-graph"]
    assert main([*train, "--dropout", "0.2", "--batchnorm"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["test_accuracy"] >= 0.9 and "eagerly" not in err


def test_cuda_graphs_on_a_cpu_device_warn_and_train_eagerly():
    result = netcore_cmd("train", "--dataset", "iris", "--device", "numpy", "--epochs", "5", "--json", "--cuda-graph")
    assert result.returncode == 0 and "test_accuracy" in json.loads(result.stdout)
    assert "runs eagerly: the numpy backend has no step capture" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_train_a_cnn_on_the_digit_images(device, tmp_path):
    model = tmp_path / "cnn.ncz"
    result = netcore_cmd("train", "--dataset", "digits", "--conv", "16,32", "--device", device, "--json",
                         "--save", str(model))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["test_accuracy"] >= 0.98 and report["conv"] == [16, 32] and report["input_shape"] == [8, 8, 1]
    evaluated = netcore_cmd("evaluate", str(model), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["test_accuracy"] == report["test_accuracy"]
    summary = netcore_cmd("summary", str(model))
    assert "conv2d (Conv2D)" in summary.stdout and "(None, 4, 4, 16)" in summary.stdout


def test_augmented_cnn_trains_and_predicts_csv_rows(tmp_path):
    from sklearn.datasets import load_digits

    model = tmp_path / "aug.ncz"
    result = netcore_cmd("train", "--dataset", "digits", "--conv", "8", "--augment", "translate,rotate:0.02,erase",
                         "--epochs", "2", "--json", "--save", str(model))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["augment"] == ["translate", "rotate", "erase"]
    digits = load_digits()
    rows = tmp_path / "rows.csv"
    header = ",".join(digits.feature_names)
    rows.write_text(header + "\n" + "\n".join(",".join(str(v) for v in row) for row in digits.data[:5]) + "\n")
    predicted = netcore_cmd("predict", str(model), "--csv", str(rows))
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.strip().splitlines()) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--conv", "16,0"], "positive integers"),
        (["train", "--augment", "shear"], "--augment takes flip, translate"),
        (["train", "--augment", "rotate:lots"], "strength must be a number"),
        (["train", "--dataset", "iris", "--conv", "8"], "iris is a table, not images"),
    ],
)
def test_image_options_refuse_bad_values_in_one_line(args, message):
    result = netcore_cmd(*args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_train_an_lstm_on_the_digits_read_row_by_row(device, tmp_path):
    model = tmp_path / "rnn.ncz"
    result = netcore_cmd("train", "--dataset", "digits", "--sequences", "--rnn", "lstm:64", "--device", device,
                         "--json", "--save", str(model))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["test_accuracy"] >= 0.96 and report["rnn"] == ["lstm:64"] and report["input_shape"] == [8, 8]
    evaluated = netcore_cmd("evaluate", str(model), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["test_accuracy"] == report["test_accuracy"]


def test_a_bidirectional_gru_with_clipping_on_the_adding_problem():
    result = netcore_cmd("train", "--dataset", "adding", "--rnn", "bigru:8,rnn:4", "--clipnorm", "1.0", "--epochs",
                         "2", "--hidden", "8", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "regression" and report["rnn"] == ["bigru:8", "simplernn:4"] and report["test_loss"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--rnn", "lstm:0"], "units must be a positive integer"),
        (["train", "--rnn", "tcn:8"], "--rnn takes kind:units"),
        (["train", "--rnn", "lstm:8", "--conv", "8"], "choose one"),
        (["train", "--clipnorm", "-1"], "positive finite number"),
        (["train", "--dataset", "iris", "--sequences"], "iris is a table, not sequences"),
    ],
)
def test_sequence_options_refuse_bad_values_in_one_line(args, message):
    result = netcore_cmd(*args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
