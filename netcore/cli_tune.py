"""``netcore tune``: an Optuna search over dense networks for a data set or CSV file (host side), one line per trial on
standard error, then one JSON object (or a summary line): the best configuration, its validation score, the study's
trial counts and the test score of the best configuration retrained on the training and validation rows. With
``--mlflow``, the search is an MLflow run and each trial a run nested in it."""

from __future__ import annotations

import json
import sys
import time

from netcore import tuning
from netcore.cli_args import check_output, data_options, fraction, positive_float, positive_int


def add_parser(commands) -> None:
    tune = commands.add_parser("tune", help="search hyperparameters of a dense network with Optuna (extra: tune)")
    data_options(tune)
    tune.add_argument("--trials", type=positive_int, default=30, help="trials this process runs (default: 30)")
    tune.add_argument("--storage", default=None, help="sqlite:///study.db, an RDB URL or journal:PATH (shared study)")
    tune.add_argument("--study", default=None, help="the study's name in the storage (processes share it by name)")
    tune.add_argument("--epochs", type=positive_int, default=30, help="epochs per trial at most (default: 30)")
    tune.add_argument("--validation-split", type=fraction, default=0.2, help="rows held out to score trials")
    tune.add_argument("--timeout", type=positive_float, default=None, help="stop starting trials after this many s")
    tune.add_argument("--device", default=None)
    tune.add_argument("--seed", type=int, default=0, help="fixes the split, the sampler and the weights")
    tune.add_argument("--plot", help="write the optimisation history here (and parameter importances beside it)")
    tune.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        metavar="EXPERIMENT",
        help="log the search as an MLflow run with a nested run per trial (MLFLOW_TRACKING_URI says where)",
    )


def run(args, load_data) -> int:
    tuning.optuna_module()  # a missing Optuna is reported before any data is read
    if args.plot:
        check_output(args.plot, "--plot")
    parent = _mlflow_parent(args)
    try:
        result = _search(args, load_data, parent)
    except BaseException:
        if parent is not None:
            parent.end("FAILED")
        raise
    if parent is not None:
        parent.log_metrics({k: v for k, v in result.items() if k.startswith("test_") or k == "best_value"})
        parent.log_params({f"best.{k}": v for k, v in result["best_params"].items()})
        parent.end("FINISHED")
        result["mlflow_run"] = parent.id
    if args.json:
        print(json.dumps(result))
    else:
        test = {k.removeprefix("test_"): v for k, v in result.items() if k.startswith("test_")}
        print(f"best {result['metric']} {result['best_value']:.4f} after {result['n_trials']} trials; test {test}")
    return 0


def _mlflow_parent(args):
    """The run the trials nest in, with ``--mlflow`` (else None)."""
    if args.mlflow is None:
        return None
    from netcore.mlflow_runs import Run

    run = Run(args.mlflow or None, run_name=f"netcore tune {args.study or ''}".strip())
    run.log_params({"trials": args.trials, "epochs": args.epochs, "seed": args.seed, "study": args.study})
    return run


def _search(args, load_data, parent) -> dict:
    data, source = load_data(args, args.seed)
    classification = data.task == "classification"
    started = time.perf_counter()
    trial_callbacks = None
    if parent is not None:
        from netcore.mlflow_runs import MLflowLogger

        def trial_callbacks(trial, params):
            run_name = f"trial {trial.number}"
            # The trials' curves and settings; the model worth keeping is the best one, retrained below.
            return [MLflowLogger(args.mlflow or None, run_name, False, parent_run_id=parent.id, params=params)]

    study = tuning.tune(
        data.X_train,
        data.y_train,
        n_trials=args.trials,
        storage=args.storage,
        study_name=args.study,
        validation_split=args.validation_split,
        epochs=args.epochs,
        device=args.device,
        seed=args.seed,
        timeout=args.timeout,
        task=data.task,
        progress=_progress,
        trial_callbacks=trial_callbacks,
    )
    seconds = time.perf_counter() - started
    counts = tuning.trial_counts(study)
    if not counts["complete"]:
        from netcore.errors import NetcoreError

        raise NetcoreError(f"no trial of study {study.study_name!r} completed ({counts})")
    best = study.best_params
    model = tuning.build_model(best, data.n_features, data.n_classes or 1, classification, args.device, args.seed)
    targets = (data.y_train, data.y_test) if classification else (data.y_train[:, None], data.y_test[:, None])
    model.fit(data.X_train, targets[0], epochs=args.epochs, batch_size=int(best["batch_size"]), verbose=0)
    test = model.evaluate(data.X_test, targets[1], return_dict=True)
    result = {
        **source,
        "study": study.study_name,
        "storage": args.storage,
        "best_params": best,
        "best_value": study.best_value,
        "metric": "val_accuracy" if classification else "val_loss",
        "n_trials": counts["complete"] + counts["pruned"],
        "trials": counts,
        "epochs_trained": sum(t.user_attrs.get("epochs", 0) for t in study.get_trials(deepcopy=False)),
        **{f"test_{k}": v for k, v in test.items()},
        "seconds": round(seconds, 3),
        "device": model.device,
    }
    if args.plot:
        _plot(study, args.plot)
    return result


def _progress(study, trial) -> None:
    """One line per finished trial on standard error."""
    epochs = trial.user_attrs.get("epochs", 0)
    if trial.state.name == "COMPLETE":
        what = f"{trial.value:.4f}"
    elif trial.state.name == "FAIL":
        what = f"failed: {trial.user_attrs.get('failure', 'an error')}"
    else:
        reason = trial.user_attrs.get("failure")
        what = trial.state.name.lower() + (f" ({reason})" if reason else "")
    print(f"trial {trial.number}: {what} ({epochs} epochs)", file=sys.stderr, flush=True)


def _plot(study, path: str) -> None:
    """Optuna's optimisation history at ``path``, its parameter importances beside it (``-importances.png``)."""
    import warnings

    import optuna.visualization.matplotlib as views

    from netcore.plot import load_pyplot

    plt = load_pyplot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
        targets = (path, path.removesuffix(".png") + "-importances.png")
        for view, target in zip((views.plot_optimization_history, views.plot_param_importances), targets, strict=True):
            axes = view(study)
            axes.figure.tight_layout()
            axes.figure.savefig(target, dpi=100)
            plt.close(axes.figure)
