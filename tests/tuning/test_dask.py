"""The scikit-learn estimators in a grid search spread over a Dask cluster (joblib's Dask backend): a LocalCluster of
two worker processes gives the scores a search in this process gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from netcore import datasets
from netcore.sklearn import MLPClassifier

distributed = pytest.importorskip("dask.distributed", reason="Dask (the extra 'dask') is not installed")


@pytest.mark.slow
def test_grid_search_over_a_local_dask_cluster_matches_a_local_search():
    import joblib

    data = datasets.load("iris", seed=0)
    grid = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [1e-2, 3e-2]}
    estimator = MLPClassifier(max_iter=60, random_state=0, device="numpy")
    local = GridSearchCV(estimator, grid, cv=3).fit(data.X_train, data.y_train)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client, joblib.parallel_backend("dask"):
        spread = GridSearchCV(estimator, grid, cv=3).fit(data.X_train, data.y_train)
        workers = client.run(lambda: __import__("os").getpid())
    assert len(set(workers.values())) == 2
    np.testing.assert_allclose(spread.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
    assert spread.best_params_ == local.best_params_ and spread.score(data.X_test, data.y_test) > 0.8
