"""Every example in examples/ runs to completion, on the CPU, in well under a minute."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script, tmp_path):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(script), "--device", "cpu"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.perf_counter() - started < 60
    assert "accuracy" in result.stdout


def test_there_are_examples_for_the_curriculum():
    assert len(EXAMPLES) >= 5
