"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's estimators with their parameters, fitted attributes and
messages, trained by netcore on any device."""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier as _ScikitClassifier
from sklearn.neural_network import MLPRegressor as _ScikitRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels

import netcore
from netcore.sklearn.base import NETCORE_CONSTRAINTS, NetcoreMLP


class MLPClassifier(ClassifierMixin, NetcoreMLP):
    """Multi-layer perceptron classifier on a netcore device: one logistic output for two classes, a softmax over
    more, independent logistic outputs for multi-label indicator targets (scikit-learn's choices)."""

    _parameter_constraints = {**_ScikitClassifier._parameter_constraints, **NETCORE_CONSTRAINTS}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _output_and_loss(self):
        if self._out_activation() == "softmax":
            return "softmax", "cross_entropy"
        return "sigmoid", netcore.losses.BinaryCrossEntropy(sum_outputs=True)  # summed over labels, as scikit-learn

    def _encode(self, y, incremental, fresh):
        """scikit-learn's label handling: the binariser fitted on a fresh fit, the classes checked otherwise."""
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                        f"Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        binarized = self._label_binarizer.transform(y)
        if fresh:
            self.n_outputs_ = binarized.shape[1]
        return self._targets_of(binarized)

    def _targets_of(self, binarized):
        """The model's targets from scikit-learn's binarised labels: class indices for a softmax, else 0/1 floats."""
        if self._label_binarizer.y_type_ == "multiclass":
            return np.asarray(binarized).argmax(axis=1).astype(np.int64)
        return np.asarray(binarized, dtype=np.float64)

    def _stratify_on(self, y):
        """scikit-learn stratifies single-output classification on its binarised labels (so its messages name
        them as it does)."""
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return None
        return self._label_binarizer.transform(y).astype(bool)

    def _score_outputs(self, raw, y, weights):
        return accuracy_score(y, self._labels(raw), sample_weight=weights)

    def _labels(self, raw):
        return self._label_binarizer.inverse_transform(raw.ravel() if raw.shape[1] == 1 else raw)

    def fit(self, X, y, sample_weight=None):
        """Train from scratch (or, with ``warm_start``, from the current weights) for up to ``max_iter`` epochs
        (L-BFGS iterations with ``solver="lbfgs"``)."""
        return self._fit(X, y, sample_weight)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``; the first call needs ``classes``, every label the model will ever see."""
        known = getattr(self, "classes_", None)
        if known is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and known is not None and not np.array_equal(known, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {known!r}")
        if known is None:
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        raw = self._raw(self._checked(X))
        if self.n_outputs_ == 1:  # one logistic unit: the probability of the second class
            return np.hstack([1 - raw, raw])
        return raw

    def predict_log_proba(self, X):
        probabilities = self.predict_proba(X)
        return np.log(probabilities, out=probabilities)

    def predict(self, X):
        return self._labels(self._raw(self._checked(X)))


class MLPRegressor(RegressorMixin, NetcoreMLP):
    """Multi-layer perceptron regressor on a netcore device: a linear output with the halved squared error, or
    ``loss="poisson"`` (an exponential output with the Poisson deviance, for counts)."""

    _parameter_constraints = {**_ScikitRegressor._parameter_constraints, **NETCORE_CONSTRAINTS}

    def __init__(
        self,
        loss="squared_error",
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
        max_fun=15000,
        dropout=0.0,
        batchnorm=False,
        device=None,
        dtype=None,
    ):
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            batchnorm=batchnorm,
            device=device,
            dtype=dtype,
        )
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _output_and_loss(self):
        if self.loss == "poisson":  # log-rates out of a linear layer: the exponential is applied in predict
            return None, netcore.losses.PoissonNLL(log_input=True, sum_outputs=True)
        return None, netcore.losses.MeanSquaredError(half=True)  # scikit-learn's squared error is halved

    def _encode(self, y, incremental, fresh):
        if self.loss == "poisson" and (np.asarray(y) < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if fresh:
            self._y_1d, self.n_outputs_ = y.ndim == 1, Y.shape[1]
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs, the model was fitted with {self.n_outputs_}")
        return Y

    def _targets_of(self, y):
        return np.asarray(y).reshape(len(y), -1)

    def _stratify_on(self, y):
        return None

    def _constant_loss(self, targets, weights) -> float:
        """scikit-learn's Poisson deviance keeps ``y log y - y``, which netcore's Poisson likelihood leaves out."""
        if self.loss != "poisson":
            return 0.0
        return float(np.average(xlogy(targets, targets) - targets, weights=weights, axis=0).sum())

    def _raw(self, X):
        out = super()._raw(X)
        return np.exp(out) if self.loss == "poisson" else out

    def _score_outputs(self, raw, y, weights):
        return r2_score(y, raw[:, 0] if self._y_1d else raw, sample_weight=weights)

    def fit(self, X, y, sample_weight=None):
        """Train from scratch (or, with ``warm_start``, from the current weights) for up to ``max_iter`` epochs
        (L-BFGS iterations with ``solver="lbfgs"``)."""
        return self._fit(X, y, sample_weight)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)`` with the current model (built on the first call)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        out = self._raw(self._checked(X))
        return out[:, 0] if self._y_1d else out
