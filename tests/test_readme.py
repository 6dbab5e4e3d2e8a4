"""The README's code runs as written."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_setup_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert first_block == ["pip install -e . && netcore train --dataset digits", 'pip install -e ".[test]" && pytest']


@pytest.mark.slow
def test_the_tour_runs(tmp_path, monkeypatch):
    tour = README.split("## A tour", 1)[1]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code.replace("verbose=1", "verbose=0"), "README tour", "exec"), namespace)
    assert (tmp_path / "digits.ncz").exists()
    assert (
        namespace["model"].evaluate(namespace["data"].X_test, namespace["data"].y_test, return_dict=True)["accuracy"]
        > 0.9
    )


def test_the_onnx_snippet_prints_the_same_probabilities_twice(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    from netcore.cli import main

    section = README.split("## Coming from Keras, going to ONNX", 1)[1]
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    for command in commands.split(" && "):
        assert main(command.split()[1:]) == 0
    capsys.readouterr()
    exec(compile(code, "README ONNX snippet", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    half = len(printed) // 2
    assert half >= 3 and printed[:half] == printed[half:]


def test_the_functional_models_snippet_runs_and_its_base_stays_frozen():
    section = README.split("### Functional models", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README functional models", "exec"), namespace)
    transfer, base = namespace["transfer"], namespace["base"]
    assert transfer.count_params() > 0 and transfer.input is base.input
    transfer.compile("adam", "cross_entropy")
    before = base.get_weights()
    X = np.random.default_rng(0).standard_normal((16, 8, 8, 1))
    transfer.fit(X, np.arange(16) % 5, epochs=1, verbose=0)
    for got, want in zip(base.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert namespace["two"].output_names == ["digit", "size"]
