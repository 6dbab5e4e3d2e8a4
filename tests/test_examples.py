"""Every example in examples/ runs to completion on the CPU and prints what it reached. The timeout only catches a
hang: how fast the examples run is the benchmarks' business, not a test's (a busy machine must not fail them)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

#: Seconds after which a run is taken to hang (each example takes seconds to a minute).
HANG = 900
EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(script), "--device", "cpu"], cwd=tmp_path, capture_output=True, text=True, timeout=HANG
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy" in result.stdout


def test_there_are_examples_for_the_curriculum():
    assert len(EXAMPLES) >= 5
