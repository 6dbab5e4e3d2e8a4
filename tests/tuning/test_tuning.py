"""Hyperparameter search with Optuna: the search space and its overrides, the pruning callback in any fit, studies
shared by processes through SQLite, the direction and storage checks, failed and diverging trials."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import netcore
from netcore import datasets, tuning

optuna = pytest.importorskip("optuna", reason="Optuna (the extra 'tune') is not installed")


def digits():
    return datasets.load("digits", seed=0)


def fixed(**params):
    defaults = dict(lr=1e-2, layers=2, activation="relu", dropout=0.1, batchnorm=False, optimizer="adam",
                    batch_size=32, l2=1e-5, units_0=64, units_1=32)  # fmt: skip
    return optuna.trial.FixedTrial({**defaults, **params})


def test_the_search_space_draws_every_parameter_and_honours_overrides():
    params = tuning.search_space(fixed())
    assert params["layers"] == 2 and [params["units_0"], params["units_1"]] == [64, 32] and "units_2" not in params
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        p = tuning.search_space(trial, layers=(3, 3), optimizer=("sgd",), units=(8, 8))
        assert p["layers"] == 3 and p["optimizer"] == "sgd" and p["units_2"] == 8
        assert 1e-4 <= p["lr"] <= 1e-1 and 16 <= p["batch_size"] <= 256 and 0 <= p["dropout"] <= 0.5
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(learning_rate=(1e-3, 1e-2)), "unknown search-space parameter"),
        (dict(lr=(1e-2, 1e-3)), "low <= high"),
        (dict(lr=(0.0, 1e-3)), "log scale"),
        (dict(layers=(1.5, 3)), "integers"),
        (dict(optimizer=()), "non-empty tuple"),
        (dict(units="many"), "range"),
    ],
)
def test_bad_overrides_are_refused_before_any_trial(overrides, match):
    data = digits()
    with pytest.raises(netcore.ConfigurationError, match=match):
        tuning.tune(data.X_train, data.y_train, n_trials=1, space=overrides)


def test_the_pruning_callback_stops_a_fit_and_leaves_the_model_as_it_was():
    data = digits()
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    model = tuning.build_model(tuning.search_space(fixed()), 64, 10, True, "numpy", 0)
    before = model.get_weights()
    callback = netcore.callbacks.OptunaPruning(trial, monitor="val_accuracy")
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        model.fit(data.X_train, data.y_train, epochs=5, validation_split=0.2, callbacks=[callback], verbose=0)
    assert callback.epochs == 1 and trial.storage.get_trial(trial._trial_id).intermediate_values.keys() == {0}
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(netcore.ConfigurationError, match="give fit validation data"):
        model.fit(data.X_train, data.y_train, epochs=1, callbacks=[netcore.callbacks.OptunaPruning(trial)], verbose=0)


def test_a_search_finds_a_good_network_and_prunes_poor_trials():
    data = digits()
    study = tuning.tune(data.X_train, data.y_train, n_trials=14, epochs=8, seed=0)
    counts = tuning.trial_counts(study)
    assert study.best_value >= 0.95 and counts["complete"] + counts["pruned"] + counts["failed"] == 14
    assert counts["pruned"] >= 1
    assert all(trial.user_attrs["epochs"] <= 8 for trial in study.trials)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself
def test_a_diverging_trial_is_pruned_with_its_reason_and_the_study_goes_on():
    data = digits()
    space = dict(lr=(50.0, 100.0), optimizer=("sgd",), batchnorm=(False,), activation=("relu",))
    study = tuning.tune(data.X_train * 1e3, data.y_train, n_trials=2, epochs=3, space=space)
    assert len(study.trials) == 2
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    assert all(t.user_attrs["failure"].startswith("diverged: loss is") for t in study.trials)


def test_regression_minimises_the_validation_loss():
    data = datasets.load("sine", samples=300, length=8)
    X = data.X_train.reshape(len(data.X_train), -1)
    study = tuning.tune(X, data.y_train, n_trials=3, epochs=4, space=dict(batchnorm=(False,)))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and np.isfinite(study.best_value)


def test_storage_and_direction_mismatches_are_refused_before_any_trial(tmp_path):
    data = digits()
    with pytest.raises(netcore.ConfigurationError, match="cannot open the study storage"):
        tuning.tune(data.X_train, data.y_train, n_trials=1, storage="postgresql://nobody@127.0.0.1:1/none")
    url = f"sqlite:///{tmp_path / 's.db'}"
    tuning.create_study("minimize", url, "mixed")
    with pytest.raises(netcore.ConfigurationError, match="exists and is minimized"):
        tuning.tune(data.X_train, data.y_train, n_trials=1, storage=url, study_name="mixed")
    assert len(optuna.load_study(study_name="mixed", storage=url).trials) == 0


def test_two_processes_share_one_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    command = [sys.executable, "-m", "netcore", "tune", "--dataset", "digits", "--trials", "3", "--epochs", "4",
               "--storage", url, "--study", "shared", "--json"]  # fmt: skip
    env = {**os.environ, "NETCORE_DEVICE": "numpy"}
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]  # fmt: skip
    outputs = [worker.communicate(timeout=900) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert len(trials) == 6 and sorted(t.number for t in trials) == list(range(6))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    report = json.loads(outputs[0][0])
    assert report["study"] == "shared" and report["test_accuracy"] > 0.8 and set(report["best_params"]) >= {"lr"}


def test_train_from_the_best_configuration(tmp_path):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"best_params": tuning.search_space(fixed(batch_size=64))}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "netcore",
            "train",
            "--dataset",
            "digits",
            "--params",
            str(best),
            "--epochs",
            "5",
            "--json",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["test_accuracy"] > 0.9
    best.write_text("{}")
    bad = subprocess.run(
        [sys.executable, "-m", "netcore", "train", "--params", str(best)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "not a configuration from netcore tune" in bad.stderr
