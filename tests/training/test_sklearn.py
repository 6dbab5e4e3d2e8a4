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
    # scikit-learn's own MLPClassifier scores 0.937-0.965 on this split over seeds 0-7 (netcore's: 0.944-0.965)
    assert search.best_score_ > 0.95 and search.score(X_test, y_test) > 0.93
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
    assert list(clf.classes_) == ["neg", "pos"] and clf.n_features_in_ == 3 and clf.n_outputs_ == 1
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
    for bad in (
        dict(solver="newton"),
        dict(solver="lbfgs", dropout=0.2),
        dict(activation="swish"),
        dict(hidden_layer_sizes=(0,)),
        dict(learning_rate="cyclic"),
        dict(power_t=-1.0),
    ):
        with pytest.raises(ValueError):
            MLPClassifier(**bad).fit(X, y)


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.standard_normal((n, 4)) + 3 * y[:, None]
    return X, y


def test_partial_fit_needs_classes_first_then_trains_one_epoch_per_call():
    X, y = _blobs()
    clf = MLPClassifier(
        hidden_layer_sizes=(16,), random_state=0, device="numpy", batch_size=20, learning_rate_init=0.01
    )
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:60], y[:60], classes=[0, 1, 2, 3])  # a class the data has not shown yet is fine
    for _ in range(30):
        clf.partial_fit(X, y)
    # scikit-learn counts n_iter_ per call (one epoch for partial_fit), loss_curve_ and t_ over all of them
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 31 and clf.t_ == 60 + 30 * len(X)
    assert list(clf.classes_) == [0, 1, 2, 3] and clf.predict_proba(X).shape == (len(X), 4) and clf.n_outputs_ == 4
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] and clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, y + 5)


def test_partial_fit_equals_fit_one_epoch_at_a_time():
    X, y = _blobs()
    options = dict(hidden_layer_sizes=(8,), random_state=3, device="numba", shuffle=False, batch_size=30)
    whole = MLPRegressor(max_iter=3, n_iter_no_change=100, **options).fit(X, y.astype(float))
    pieces = MLPRegressor(**options)
    for _ in range(3):
        pieces.partial_fit(X, y.astype(float))
    np.testing.assert_allclose(pieces.predict(X), whole.predict(X), rtol=1e-12)
    assert pieces.loss_curve_ == pytest.approx(whole.loss_curve_, rel=1e-12)


def test_warm_start_continues_from_the_fitted_weights():
    X, y = _blobs()
    cold = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="numpy")
    warm = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="numpy", warm_start=True)
    cold.fit(X, y), warm.fit(X, y)
    first = [c.copy() for c in warm.coefs_]
    cold.fit(X, y), warm.fit(X, y)
    np.testing.assert_array_equal(cold.coefs_[0], first[0])  # a cold refit starts over from the same seed
    assert not np.array_equal(warm.coefs_[0], first[0]) and warm.n_iter_ == 5 and len(warm.loss_curve_) == 10
    with pytest.raises(ValueError, match="same classes as in the previous call to fit"):
        warm.fit(X[y < 2], y[y < 2])


def test_multilabel_targets_use_sigmoid_outputs():
    X, y = _blobs(150)
    Y = np.c_[y == 0, y >= 1, X[:, 0] > 1].astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, batch_size=30, random_state=0, device="numba")
    clf.fit(X, Y)
    assert clf.out_activation_ == "logistic" and list(clf.classes_) == [0, 1, 2]
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and not np.allclose(proba.sum(axis=1), 1.0)
    predicted = clf.predict(X)
    assert predicted.shape == (150, 3) and set(np.unique(predicted)) <= {0, 1}
    assert (predicted == Y).mean() > 0.9


def test_learning_rate_schedules_follow_scikit_learn():
    X, y = _blobs()
    options = dict(solver="sgd", hidden_layer_sizes=(8,), random_state=0, device="numpy", batch_size=40)
    inv = MLPClassifier(learning_rate="invscaling", power_t=0.5, max_iter=4, n_iter_no_change=100, **options)
    inv.fit(X, y)
    assert inv.model_.optimizer.lr == pytest.approx(0.001 / (3 * len(X) + 1) ** 0.5)
    adaptive = MLPClassifier(learning_rate="adaptive", max_iter=300, n_iter_no_change=2, tol=10.0, **options)
    adaptive.fit(X, y)  # tol=10: no epoch ever counts as an improvement, so every third epoch is a plateau
    assert adaptive.model_.optimizer.lr <= 1e-6 and adaptive.n_iter_ < 300
    constant = MLPClassifier(learning_rate="constant", max_iter=3, **options).fit(X, y)
    assert constant.model_.optimizer.lr == 0.001


def test_early_stopping_holds_out_a_stratified_split_of_sorted_data():
    X, y = _blobs(150)
    order = np.argsort(y, kind="stable")  # sorted labels: a tail split would validate on one class only
    clf = MLPClassifier(
        hidden_layer_sizes=(16,),
        early_stopping=True,
        validation_fraction=0.2,
        batch_size=20,
        learning_rate_init=0.01,
        random_state=0,
        device="numpy",
    ).fit(X[order], y[order])
    assert clf.best_loss_ is None and clf.best_validation_score_ > 0.9
    assert clf.t_ == clf.n_iter_ * 120  # 150 rows less the 30 held out


def test_sample_weights_mean_repeated_rows():
    X, y = _blobs(30)
    weights = np.arange(30) % 3  # 0: row dropped, 2: row repeated
    keep = np.repeat(np.arange(30), weights)
    options = dict(hidden_layer_sizes=(4,), max_iter=20, random_state=0, device="numpy", alpha=0.1, shuffle=False)
    weighted = MLPRegressor(**options).fit(X, y.astype(float), sample_weight=weights)
    repeated = MLPRegressor(**options).fit(X[keep], y[keep].astype(float))
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-9)


def test_fitted_attributes_match_scikit_learns():
    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8, 5), max_iter=3, random_state=0, device="numpy", batchnorm=True)
    clf.fit(X, y)
    assert clf.n_layers_ == 4 and clf.out_activation_ == "softmax"
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (5,), (3,)]
    assert not clf.intercepts_[0].any()  # the bias before batch norm does not exist: zeros stand in
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.loss_ == clf.loss_curve_[-1]
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None


def test_regressor_minimises_scikit_learns_halved_squared_error():
    X, y = _blobs()
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, alpha=0.0, random_state=0, device="numpy", batch_size=120)
    reg.fit(X, y.astype(float))
    before = pickle.loads(pickle.dumps(reg))  # the loss (halved) survives the checkpoint inside the pickle
    assert before.model_.loss.half
    predictions = before.predict(X)
    before.partial_fit(X, y.astype(float))  # one full-batch step: its loss is the loss of the predictions above
    assert before.loss_ == pytest.approx(0.5 * np.mean((predictions - y) ** 2), rel=1e-12)


def test_estimators_on_the_cupy_backend(cupy_backend):
    X, y = _blobs()
    options = dict(hidden_layer_sizes=(16,), batch_size=20, learning_rate_init=0.01, max_iter=30, random_state=0)
    clf = MLPClassifier(device=cupy_backend.name, **options).fit(X, y)
    assert clf.model_.backend is cupy_backend and clf.score(X, y) > 0.9
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-12)
    reference = MLPClassifier(device="numpy", **options).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(X), rtol=1e-6, atol=1e-9)
