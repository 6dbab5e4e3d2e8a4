"""Hyper-parameter search with scikit-learn's GridSearchCV over netcore's MLPClassifier, inside a Pipeline.

python examples/04_grid_search.py [--device numba]
"""

import argparse

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from netcore.sklearn import MLPClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
pipeline = make_pipeline(StandardScaler(), MLPClassifier(max_iter=80, random_state=0, device=args.device))
grid = {
    "mlpclassifier__hidden_layer_sizes": [(16,), (64, 32)],
    "mlpclassifier__alpha": [1e-4, 1e-1],
    "mlpclassifier__dropout": [0.0, 0.3],
}
search = GridSearchCV(pipeline, grid, cv=3).fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated accuracy {search.best_score_:.3f}; test accuracy {search.score(X_test, y_test):.3f}")
