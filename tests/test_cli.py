"""The command line: the devices table, training with --json, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netcore.cli import main


def netcore_cmd(*args, env=None):
    return subprocess.run([sys.executable, "-m", "netcore", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})  # fmt: skip


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
