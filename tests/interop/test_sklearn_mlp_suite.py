"""scikit-learn's own tests of its MLP estimators (``sklearn/neural_network/tests/test_mlp.py`` of the installed
scikit-learn), run against :mod:`netcore.sklearn`: the module is loaded with its import of the estimators swapped
for netcore's, and nothing else changed. Tests that set or read scikit-learn's private attributes are skipped, each
with the reason."""

from __future__ import annotations

import os
import pathlib

import pytest

sklearn = pytest.importorskip("sklearn")
SOURCE = pathlib.Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
SKLEARN_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
NETCORE_IMPORT = "from netcore.sklearn import MLPClassifier, MLPRegressor"

#: Tests of scikit-learn's internals rather than of the estimators' behaviour.
PRIVATE = {
    "test_fit": "sets coefs_ and the private _coef_grads and _intercept_grads before a worked example",
    "test_n_iter_no_change": "reads the private _no_improvement_count",
    "test_learning_rate_warmstart": "reads the private _optimizer.learning_rate",
    "test_adaptive_learning_rate": "reads the private _optimizer.learning_rate",
}


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture: the seed of SKLEARN_TESTS_GLOBAL_RANDOM_SEED (42 by default)."""
    return int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42").split("-")[0])


_code = SOURCE.read_text()
if SKLEARN_IMPORT not in _code:
    raise RuntimeError(f"{SOURCE} no longer imports the estimators as {SKLEARN_IMPORT!r}; update this harness")
exec(compile(_code.replace(SKLEARN_IMPORT, NETCORE_IMPORT), str(SOURCE), "exec"), globals())  # noqa: S102

for _name, _reason in PRIVATE.items():
    globals()[_name] = pytest.mark.skip(reason=f"private scikit-learn attributes: {_reason}")(globals()[_name])
