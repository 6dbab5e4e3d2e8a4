"""scikit-learn estimators backed by netcore: drop-in replacements for ``sklearn.neural_network.MLPClassifier``
and ``MLPRegressor`` that train on any netcore device.

Shared hyper-parameters keep scikit-learn's names and meaning: ``alpha`` is the L2 penalty
``alpha / (2 * batch_size) * ||W||^2`` added to each batch's mean loss (scikit-learn's scaling), ``max_iter`` counts
epochs, training stops when the loss (or, with ``early_stopping``, the validation score) has not improved by ``tol``
for ``n_iter_no_change`` epochs. netcore adds ``dropout``, ``batchnorm``, ``device`` and ``dtype``. Only the
``adam`` and ``sgd`` solvers exist (no L-BFGS).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

import netcore
from netcore import callbacks as callbacks_mod
from netcore.layers import Activation, BatchNorm, Dense, Dropout

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


class _NetcoreMLP(BaseEstimator):
    """Shared construction, training and pickling of the two estimators."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        dropout=0.0,
        batchnorm=False,
        device=None,
        dtype="float64",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.device = device
        self.dtype = dtype

    # ----------------------------------------------------------------- building blocks
    def _validate_hyperparameters(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd' (netcore has no L-BFGS), got {self.solver!r}")
        if self.max_iter <= 0 or self.alpha < 0 or self.learning_rate_init <= 0:
            raise ValueError("max_iter and learning_rate_init must be positive and alpha >= 0")
        sizes = [self.hidden_layer_sizes] if np.isscalar(self.hidden_layer_sizes) else self.hidden_layer_sizes
        sizes = [int(s) for s in sizes]
        if any(s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive, got {self.hidden_layer_sizes}")
        return sizes

    def _batch(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if int(self.batch_size) <= 0:
            raise ValueError(f"batch_size must be positive or 'auto', got {self.batch_size}")
        return min(int(self.batch_size), n)

    def _build(self, n_features: int, n_outputs: int, final: str, loss: str, batch: int) -> netcore.Sequential:
        sizes = self._validate_hyperparameters()
        regularizer = netcore.regularizers.L2(self.alpha / (2 * batch)) if self.alpha else None
        act = _ACTIVATIONS[self.activation]
        layers = []
        for width in sizes:
            if self.batchnorm:
                layers += [Dense(width, use_bias=False, kernel_regularizer=regularizer), BatchNorm(), Activation(act)]
            else:
                layers.append(Dense(width, act, kernel_regularizer=regularizer))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(n_outputs, final, kernel_regularizer=regularizer))
        seed = None if self.random_state is None else int(np.random.RandomState(self.random_state).randint(2**31))
        model = netcore.Sequential(layers, input_dim=n_features, device=self.device, dtype=self.dtype, seed=seed)
        if self.solver == "adam":
            optimizer = netcore.optimizers.Adam(
                lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon
            )
        else:
            optimizer = netcore.optimizers.SGD(
                lr=self.learning_rate_init,
                momentum=self.momentum,
                nesterov=self.nesterovs_momentum and self.momentum > 0,
            )
        model.compile(optimizer, loss, self._metric())
        return model

    def _train(self, X, y):
        batch = self._batch(X.shape[0])
        stopper = (
            callbacks_mod.EarlyStopping(f"val_{self._metric()[0]}", "max", self.n_iter_no_change, self.tol)
            if self.early_stopping
            else callbacks_mod.EarlyStopping("loss", "min", self.n_iter_no_change, self.tol, False)
        )
        history = self.model_.fit(
            X,
            y,
            epochs=int(self.max_iter),
            batch_size=batch,
            shuffle=self.shuffle,
            verbose=2 if self.verbose else 0,
            callbacks=[stopper],
            validation_split=self.validation_fraction if self.early_stopping else 0.0,
        )
        self.loss_curve_ = list(history["loss"])
        self.n_iter_ = len(history.epoch)
        self.loss_ = self.loss_curve_[-1]
        if self.early_stopping:
            self.validation_scores_ = list(history[f"val_{self._metric()[0]}"])
            self.best_validation_score_ = max(self.validation_scores_)
        self.coefs_ = [w for w in self.model_.get_weights() if w.ndim == 2]
        return self

    def _outputs(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict(X.astype(self.dtype, copy=False))

    # ----------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            handle, path = tempfile.mkstemp(suffix=".ncz")
            os.close(handle)
            try:
                model.save(path)
                with open(path, "rb") as f:
                    state["_model_checkpoint"] = f.read()
            finally:
                os.remove(path)
        return state

    def __setstate__(self, state):
        blob = state.pop("_model_checkpoint", None)
        self.__dict__.update(state)
        if blob is not None:
            handle, path = tempfile.mkstemp(suffix=".ncz")
            try:
                with os.fdopen(handle, "wb") as f:
                    f.write(blob)
                self.model_ = netcore.load(path, device=self.device)
            finally:
                os.remove(path)


class MLPClassifier(ClassifierMixin, _NetcoreMLP):
    """Multi-layer perceptron classifier (softmax output, cross-entropy loss) on a netcore device."""

    def _metric(self):
        return ["accuracy"]

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=False)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self.n_outputs_ = 1
        self.model_ = self._build(X.shape[1], len(self.classes_), "softmax", "cross_entropy", self._batch(len(y)))
        return self._train(X.astype(self.dtype, copy=False), encoded.astype(np.int64))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        return self._outputs(X).astype(np.float64)

    def predict_log_proba(self, X):
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    def predict(self, X):
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]


class MLPRegressor(RegressorMixin, _NetcoreMLP):
    """Multi-layer perceptron regressor (linear output, squared error) on a netcore device."""

    def _metric(self):
        return ["r2"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True, y_numeric=True)
        self._y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self.n_outputs_ = Y.shape[1]
        self.model_ = self._build(X.shape[1], Y.shape[1], None, "mse", self._batch(len(Y)))
        return self._train(X.astype(self.dtype, copy=False), Y.astype(self.dtype))

    def predict(self, X):
        out = self._outputs(X).astype(np.float64)
        return out[:, 0] if self._y_1d else out
