"""The scikit-learn estimators: check_estimator, Pipeline, GridSearchCV, and the shared hyper-parameters."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from netcore.sklearn import MLPClassifier, MLPRegressor
from tests.conftest import require


@pytest.mark.slow
@pytest.mark.parametrize("device", ["numpy", "numba"])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_check_estimator_passes(cls, device):
    require(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls(device=device), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    assert len(results) > 40


@pytest.mark.slow
def test_grid_search_in_a_pipeline_on_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), MLPClassifier(max_iter=60, random_state=0, device="numba")),
        {"mlpclassifier__hidden_layer_sizes": [(16,), (32, 16)], "mlpclassifier__alpha": [1e-4, 1e-2]},
        cv=3,
    )
    search.fit(X_train, y_train)
    assert search.best_score_ > 0.95 and search.score(X_test, y_test) > 0.95
    assert set(search.best_params_) == {"mlpclassifier__hidden_layer_sizes", "mlpclassifier__alpha"}


def test_classifier_attributes_labels_and_pickling():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    clf = MLPClassifier(
        hidden_layer_sizes=(8,),
        max_iter=50,
        learning_rate_init=0.05,
        batch_size=16,
        random_state=1,
        device="numpy",
        dropout=0.1,
        batchnorm=True,
    ).fit(X, y)
    assert list(clf.classes_) == ["neg", "pos"] and clf.n_features_in_ == 3
    assert clf.predict_proba(X).shape == (80, 2) and set(clf.predict(X)) <= {"neg", "pos"}
    assert clf.score(X, y) > 0.9 and 0 < clf.n_iter_ <= 50 and len(clf.loss_curve_) == clf.n_iter_
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert clf.get_params()["dropout"] == 0.1 and clf.set_params(alpha=0.5).alpha == 0.5


def test_regressor_and_early_stopping():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    reg = MLPRegressor(
        hidden_layer_sizes=(32,), max_iter=300, early_stopping=True, n_iter_no_change=5, random_state=0, device="numba"
    ).fit(X, y)
    assert reg.n_iter_ < 300 and reg.best_validation_score_ == max(reg.validation_scores_)
    assert reg.score(X, y) > 0.4 and reg.predict(X).shape == (len(y),)


def test_invalid_hyperparameters():
    X, y = np.ones((10, 2)), np.arange(10) % 2
    for bad in (dict(solver="lbfgs"), dict(activation="swish"), dict(hidden_layer_sizes=(0,))):
        with pytest.raises(ValueError):
            MLPClassifier(**bad).fit(X, y)
