"""scikit-learn estimators backed by netcore: drop-in replacements for ``sklearn.neural_network.MLPClassifier``
and ``MLPRegressor`` that train on any netcore device.

Shared hyper-parameters keep scikit-learn's names and meaning: ``alpha`` is the L2 penalty
``alpha / (2 * batch_size) * ||W||^2`` added to each batch's mean loss (scikit-learn's scaling), ``max_iter`` counts
epochs, training stops when the loss (or, with ``early_stopping``, the score on a stratified validation split) has
not improved by ``tol`` for ``n_iter_no_change`` epochs; with ``solver="sgd"``, ``learning_rate`` is
``"constant"``, ``"invscaling"`` (``learning_rate_init / (t + 1) ** power_t`` with ``t`` the samples seen) or
``"adaptive"`` (divided by 5 at each plateau, stopping below 1e-6). ``warm_start``, ``partial_fit``,
``sample_weight`` and multi-label targets work as in scikit-learn. netcore adds ``dropout``, ``batchnorm``,
``device`` and ``dtype``. Only the ``adam`` and ``sgd`` solvers exist (no L-BFGS).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

import netcore
from netcore import callbacks as callbacks_mod
from netcore.layers import Activation, BatchNorm, Dense, Dropout

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
#: scikit-learn's names of netcore's output activations (``out_activation_``).
_OUTPUT_NAMES = {"softmax": "softmax", "sigmoid": "logistic", None: "identity"}


class _AdaptiveRate(callbacks_mod.EarlyStopping):
    """scikit-learn's ``learning_rate="adaptive"``: a plateau divides the learning rate by 5 and starts counting
    again; only a plateau at a rate of 1e-6 or less stops training."""

    def _on_plateau(self, epoch):
        optimizer = self.model.optimizer
        if optimizer.lr <= 1e-6:
            super()._on_plateau(epoch)
            return
        optimizer.lr = optimizer.lr / 5
        self.wait = 0


class _InverseScaling(callbacks_mod.Callback):
    """scikit-learn's ``learning_rate="invscaling"``: ``lr = learning_rate_init / (t + 1) ** power_t`` for each
    epoch, ``t`` the training samples seen before it (set once per epoch, as scikit-learn does)."""

    def __init__(self, initial: float, power: float, seen: int, per_epoch: int):
        super().__init__()
        self.initial, self.power, self.seen, self.per_epoch = initial, power, seen, per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.lr = self.initial / (self.seen + epoch * self.per_epoch + 1) ** self.power


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
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
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
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
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
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {_LEARNING_RATES}, got {self.learning_rate!r}")
        if self.max_iter <= 0 or self.alpha < 0 or self.learning_rate_init <= 0 or self.power_t < 0:
            raise ValueError("max_iter and learning_rate_init must be positive, alpha and power_t >= 0")
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

    def _build(self, n_features: int, n_outputs: int, final: str, loss: str, batch_weight: float):
        """The network; ``batch_weight`` is a batch's expected sum of sample weights (its size when unweighted),
        which divides ``alpha`` as scikit-learn's does, so weights of 2 mean what repeating the rows means."""
        sizes = self._validate_hyperparameters()
        regularizer = netcore.regularizers.L2(self.alpha / (2 * batch_weight)) if self.alpha else None
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
        model.compile(self._optimizer(), loss, self._metric())
        return model

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        """``fit`` (a fresh model unless ``warm_start``) and ``partial_fit`` (one epoch, the same model)."""
        fresh = not hasattr(self, "model_") or not (incremental or self.warm_start)
        X, y = validate_data(
            self, X, y, reset=fresh, dtype=[np.float64, np.float32], multi_output=True, y_numeric=self._numeric_y
        )
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        targets = self._encode_targets(y, fresh, incremental, classes)
        batch = self._batch(X.shape[0])
        if fresh:
            final, loss = self._output_and_loss()
            mean_weight = 1.0 if weights is None else float(np.mean(weights))
            self.model_ = self._build(X.shape[1], self._n_model_outputs(), final, loss, batch * mean_weight)
            self.t_, self.n_iter_, self.loss_curve_ = 0, 0, []
            self.validation_scores_ = [] if self.early_stopping else None
        elif not incremental:  # warm start: the same weights, a fresh optimizer with the current settings
            self.model_.compile(self._optimizer(), self.model_.loss, self._metric())
        X = X.astype(self.dtype, copy=False)
        early_stopping = self.early_stopping and not incremental
        validation = None
        if early_stopping:
            X, targets, weights, validation = self._validation_split(X, targets, weights)
        history = self.model_.fit(
            X,
            targets,
            epochs=1 if incremental else int(self.max_iter),
            batch_size=batch,
            shuffle=self.shuffle,
            verbose=2 if self.verbose else 0,
            sample_weight=weights,
            callbacks=self._callbacks(early_stopping, len(X), incremental),
            validation_data=validation,
        )
        self._record(history, len(X), early_stopping)
        return self

    def _optimizer(self):
        if self.solver == "adam":
            return netcore.optimizers.Adam(
                lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon
            )
        return netcore.optimizers.SGD(
            lr=self.learning_rate_init, momentum=self.momentum, nesterov=self.nesterovs_momentum and self.momentum > 0
        )

    def _validation_split(self, X, targets, weights):
        """scikit-learn's hold-out for ``early_stopping``: random, stratified for single-label classification."""
        stratify = targets if self._stratify else None
        arrays = [X, targets] + ([weights] if weights is not None else [])
        parts = train_test_split(
            *arrays, test_size=self.validation_fraction, random_state=self.random_state, stratify=stratify
        )
        if weights is None:
            X_train, X_val, y_train, y_val = parts
            return X_train, y_train, None, (X_val, y_val)
        X_train, X_val, y_train, y_val, w_train, _ = parts
        return X_train, y_train, w_train, (X_val, y_val)

    def _callbacks(self, early_stopping: bool, rows: int, incremental: bool) -> list:
        schedule = self.learning_rate if self.solver == "sgd" else "constant"
        found = []
        if schedule == "invscaling":
            found.append(_InverseScaling(self.learning_rate_init, self.power_t, self.t_, rows))
        if incremental:  # one epoch: nothing to stop
            return found
        if early_stopping:
            monitor, mode, restore = f"val_{self._metric()[0]}", "max", True
        else:
            monitor, mode, restore = "loss", "min", False
        stopper = _AdaptiveRate if schedule == "adaptive" else callbacks_mod.EarlyStopping
        return [*found, stopper(monitor, mode, self.n_iter_no_change, self.tol, restore)]

    def _record(self, history, rows: int, early_stopping: bool) -> None:
        """scikit-learn's fitted attributes, accumulated over warm starts and partial fits."""
        self.loss_curve_ += list(history["loss"])
        self.n_iter_ += len(history.epoch)
        self.t_ += rows * len(history.epoch)
        self.loss_ = self.loss_curve_[-1]
        if early_stopping:
            self.validation_scores_ = (self.validation_scores_ or []) + list(history[f"val_{self._metric()[0]}"])
            self.best_validation_score_ = max(self.validation_scores_)
            self.best_loss_ = None
        else:
            self.best_loss_, self.best_validation_score_ = min(self.loss_curve_), None
        dense = [layer for layer in self.model_.layers if isinstance(layer, Dense)]
        backend = self.model_.backend
        self.coefs_ = [backend.to_numpy(layer.params["W"]).copy() for layer in dense]
        # A layer without a bias (followed by batch norm) adds zero: scikit-learn's users expect one per layer.
        self.intercepts_ = [
            backend.to_numpy(layer.params["b"]).copy() if "b" in layer.params else np.zeros(layer.units, self.dtype)
            for layer in dense
        ]
        self.n_layers_ = len(dense) + 1
        self.out_activation_ = _OUTPUT_NAMES[self._output_and_loss()[0]]

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
    """Multi-layer perceptron classifier on a netcore device: softmax output and cross-entropy for one label per
    sample, sigmoid outputs and binary cross-entropy for multi-label indicator targets."""

    _numeric_y = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _metric(self):
        return ["accuracy"]

    @property
    def _stratify(self):
        return not self._multilabel

    def _n_model_outputs(self):
        return len(self.classes_)

    def _output_and_loss(self):
        return ("sigmoid", "binary_cross_entropy") if self._multilabel else ("softmax", "cross_entropy")

    def _encode_targets(self, y, fresh, incremental, classes):
        """Class indices (or the 0/1 indicator matrix); sets ``classes_`` on a fresh fit and checks it otherwise."""
        multilabel = type_of_target(y) == "multilabel-indicator"
        if fresh:
            if incremental and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._multilabel = multilabel
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
            else:
                check_classification_targets(y)
                self.classes_ = np.unique(classes if incremental else column_or_1d(y, warn=True))
            # scikit-learn counts one output for two classes (one logistic unit); netcore keeps a softmax pair.
            self.n_outputs_ = 1 if len(self.classes_) == 2 and not multilabel else len(self.classes_)
        if multilabel != self._multilabel:
            raise ValueError("a model fitted on multi-label targets needs multi-label targets, and vice versa")
        if multilabel:
            if y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} labels, the model was fitted with {len(self.classes_)}")
            return y.astype(self.dtype)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(f"y has classes not in classes_ {list(self.classes_)}: {list(unseen)}")
        if not fresh and not incremental and not np.array_equal(np.unique(y), self.classes_):
            raise ValueError(
                f"warm_start needs the classes of the previous fit, {list(self.classes_)}; y has {list(np.unique(y))}"
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def fit(self, X, y, sample_weight=None):
        """Train from scratch (or, with ``warm_start``, from the current weights) for up to ``max_iter`` epochs."""
        return self._fit(X, y, sample_weight)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``; the first call needs ``classes``, every label the model will ever see."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        return self._outputs(X).astype(np.float64)

    def predict_log_proba(self, X):
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    def predict(self, X):
        probabilities = self.predict_proba(X)
        if self._multilabel:
            return (probabilities > 0.5).astype(np.int64)
        return self.classes_[np.argmax(probabilities, axis=1)]


class MLPRegressor(RegressorMixin, _NetcoreMLP):
    """Multi-layer perceptron regressor (linear output, squared error) on a netcore device."""

    def _metric(self):
        return ["r2"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    _numeric_y = True
    _stratify = False

    def _n_model_outputs(self):
        return self.n_outputs_

    def _output_and_loss(self):
        return None, netcore.losses.MeanSquaredError(half=True)  # scikit-learn's squared error is halved

    def _encode_targets(self, y, fresh, incremental, classes):
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if fresh:
            self._y_1d, self.n_outputs_ = y.ndim == 1, Y.shape[1]
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs, the model was fitted with {self.n_outputs_}")
        return Y.astype(self.dtype)

    def fit(self, X, y, sample_weight=None):
        """Train from scratch (or, with ``warm_start``, from the current weights) for up to ``max_iter`` epochs."""
        return self._fit(X, y, sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)`` with the current model (built on the first call)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        out = self._outputs(X).astype(np.float64)
        return out[:, 0] if self._y_1d else out
