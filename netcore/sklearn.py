"""scikit-learn estimators backed by netcore: drop-in replacements for ``sklearn.neural_network.MLPClassifier``
and ``MLPRegressor`` that train on any netcore device, and pass scikit-learn's own tests of its MLP estimators.

The parameters, fitted attributes, messages and training rules are scikit-learn's: ``alpha`` is the L2 penalty
``alpha / (2 * batch weight) * ||W||^2`` added to each batch's mean loss; ``max_iter`` counts epochs (L-BFGS
iterations with ``solver="lbfgs"``, which runs ``scipy.optimize``'s L-BFGS-B over the flat parameter buffer);
training stops once the loss (or, with ``early_stopping``, the validation score) has not improved by ``tol`` for
more than ``n_iter_no_change`` epochs; ``learning_rate="adaptive"`` divides the rate by 5 at each plateau instead;
binary classification has one logistic output; float32 input trains float32 weights. netcore adds ``dropout``,
``batchnorm`` (stochastic solvers only), ``device`` and ``dtype``. Sparse input is densified.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from numbers import Real

import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _ScikitClassifier
from sklearn.neural_network import MLPRegressor as _ScikitRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

import netcore
from netcore import callbacks as callbacks_mod
from netcore.layers import Activation, BatchNorm, Dense, Dropout

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
)
#: netcore's parameters beside scikit-learn's.
_NETCORE_CONSTRAINTS = {
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "batchnorm": ["boolean"],
    "device": [str, None],
    "dtype": [StrOptions({"float32", "float64"}), None],
}


class _InverseScaling(callbacks_mod.Callback):
    """scikit-learn's ``learning_rate="invscaling"``: ``lr = learning_rate_init / (t + 1) ** power_t`` for each
    epoch, ``t`` the training samples seen before it."""

    def __init__(self, estimator):
        super().__init__()
        self.estimator = estimator

    def on_epoch_begin(self, epoch, logs=None):
        est = self.estimator
        self.model.optimizer.lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t


class _Iterations(callbacks_mod.Callback):
    """scikit-learn's end of an iteration: the fitted attributes, the verbose lines, the no-improvement count (on
    the training loss, or on the validation score with ``early_stopping``, keeping the best weights), the adaptive
    learning rate, stopping, and the ConvergenceWarning when ``max_iter`` is reached."""

    def __init__(self, estimator, rows: int, validation, incremental: bool):
        super().__init__()
        self.estimator, self.rows, self.validation, self.incremental = estimator, rows, validation, incremental
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        est, model = self.estimator, self.model
        est.n_iter_ += 1
        est.t_ += self.rows
        est.loss_ = float(logs["loss"]) + est._loss_offset
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        if self.validation is not None:
            score = est._validation_score(*self.validation)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            est._no_improvement_count = 0 if score >= est.best_validation_score_ + est.tol else (
                est._no_improvement_count + 1
            )  # fmt: skip
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_weights = model.get_weights()
        else:
            improved = not est.loss_ > est.best_loss_ - est.tol
            est._no_improvement_count = 0 if improved else est._no_improvement_count + 1
            est.best_loss_ = min(est.best_loss_, est.loss_)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            message = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if est.solver == "sgd" and est.learning_rate == "adaptive" and model.optimizer.lr > 1e-6:
                model.optimizer.lr = model.optimizer.lr / 5
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {model.optimizer.lr:f}")
            else:
                if est.verbose:
                    small = est.solver == "sgd" and est.learning_rate == "adaptive"
                    print(message + (" Learning rate too small. Stopping." if small else " Stopping."))
                model.stop_training = True
                return
        if not self.incremental and est.n_iter_ == est.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the optimization hasn't "
                "converged yet.",
                ConvergenceWarning,
                stacklevel=2,
            )


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
        max_fun=15000,
        dropout=0.0,
        batchnorm=False,
        device=None,
        dtype=None,
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
        self.max_fun = max_fun
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.device = device
        self.dtype = dtype

    # ----------------------------------------------------------------- training
    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._validate_params()
        sizes = list(self.hidden_layer_sizes) if np.iterable(self.hidden_layer_sizes) else [self.hidden_layer_sizes]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if self.solver == "lbfgs" and (self.dropout or self.batchnorm):
            raise ValueError("dropout and batchnorm need a stochastic solver ('adam' or 'sgd'), not 'lbfgs'")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        fresh = not hasattr(self, "model_") or not (self.warm_start or incremental)
        self._random_state = check_random_state(self.random_state)
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=fresh,
            y_numeric=isinstance(self, RegressorMixin),
        )
        X = X.toarray() if scipy.sparse.issparse(X) else X
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        targets = self._encode(y, incremental, fresh)
        if fresh:
            self._dtype_ = self.dtype or X.dtype.name
        X = X.astype(self._dtype_, copy=False)
        validation = None
        if self.early_stopping and self.solver != "lbfgs":
            X, targets, weights, validation = self._validation_split(X, y, targets, weights)
        batch = X.shape[0] if self.solver == "lbfgs" else self._batch(X.shape[0])
        if fresh:
            self._initialize(X.shape[1], sizes, batch * (1.0 if weights is None else float(np.mean(weights))))
        elif not incremental:  # warm start: the same weights, a fresh optimizer with the current settings
            self.model_.compile(self._optimizer(), self.model_.loss)
        self._loss_offset = self._constant_loss(targets, weights)
        self.n_iter_ = 0
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, targets, weights)
        else:
            self._fit_stochastic(X, targets, weights, validation, batch, incremental)
        self._publish()
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError(_NON_FINITE)
        return self

    def _initialize(self, n_features: int, sizes: list[int], batch_weight: float) -> None:
        """A fresh network and scikit-learn's bookkeeping. ``batch_weight`` (a batch's expected sum of sample
        weights) divides ``alpha`` as scikit-learn's does, so weights of 2 mean what repeating the rows means."""
        regularizer = netcore.regularizers.L2(self.alpha / (2 * batch_weight)) if self.alpha else None
        act = _ACTIVATIONS[self.activation]
        # scikit-learn's initialisation: weights and biases uniform in +-sqrt(factor / (fan_in + fan_out)), factor 2
        # for the logistic activation and 6 otherwise (limit = sqrt(3 gain / mean fan)).
        init = netcore.initializers.Uniform(gain=(2.0 if self.activation == "logistic" else 6.0) / 6, fan="avg")
        options = {"kernel_regularizer": regularizer, "kernel_initializer": init, "bias_initializer": init}
        layers = []
        for width in sizes:
            if self.batchnorm:
                layers += [Dense(width, use_bias=False, **options), BatchNorm(), Activation(act)]
            else:
                layers.append(Dense(width, act, **options))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        final, loss = self._output_and_loss()
        layers.append(Dense(self.n_outputs_, final, **options))
        seed = int(self._random_state.randint(2**31))
        self.model_ = netcore.Sequential(
            layers, input_dim=n_features, device=self.device, dtype=self._dtype_, seed=seed
        )
        self.model_.compile(self._optimizer(), loss)
        self.t_ = 0
        self.n_layers_ = len(sizes) + 2
        self.out_activation_ = self._out_activation()
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _batch(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=2
            )
        return int(np.clip(self.batch_size, 1, n))

    def _optimizer(self):
        if self.solver == "sgd":
            nesterov = self.nesterovs_momentum and self.momentum > 0
            return netcore.optimizers.SGD(lr=self.learning_rate_init, momentum=self.momentum, nesterov=nesterov)
        return netcore.optimizers.Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)

    def _validation_split(self, X, y, targets, weights):
        """scikit-learn's hold-out for ``early_stopping``: random, stratified for single-output classification."""
        stratify = self._stratify_on(y)
        arrays = [X, targets, y] + ([weights] if weights is not None else [])
        split = train_test_split(
            *arrays, random_state=self._random_state, test_size=self.validation_fraction, stratify=stratify
        )
        X_train, X_val, t_train, _, _, y_val = split[:6]
        w_train, w_val = (split[6], split[7]) if weights is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        return X_train, t_train, w_train, (X_val, y_val, w_val)

    def _fit_stochastic(self, X, targets, weights, validation, batch: int, incremental: bool) -> None:
        iterations = _Iterations(self, X.shape[0], validation, incremental)
        callbacks = [iterations]
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            callbacks.insert(0, _InverseScaling(self))
        history = self.model_.fit(
            X,
            targets,
            epochs=1 if incremental else int(self.max_iter),
            batch_size=batch,
            shuffle=self.shuffle,
            verbose=0,
            sample_weight=weights,
            callbacks=callbacks,
            on_nonfinite="ignore",  # as scikit-learn: the loss may diverge; non-finite weights are refused after
        )
        if history.interrupted:
            warnings.warn("Training interrupted by user.", stacklevel=2)
        if validation is not None and iterations.best_weights is not None:
            self.model_.set_weights(iterations.best_weights)

    def _fit_lbfgs(self, X, targets, weights) -> None:
        """scipy's L-BFGS-B over the model's flat parameter buffer, the whole data set as one batch."""
        model = self.model_
        backend = model.backend
        with backend.scope():
            Xd, Td, Wd = model.prepare(X, targets, sample_weight=weights)
        params = model.parameter_buffer

        def objective(theta):
            params[...] = backend.asarray(theta, params.dtype)
            loss = backend.to_float(model.loss_and_gradients(Xd, Td, Wd))
            return loss, backend.to_numpy(model.gradient_buffer).astype(np.float64)

        def report(intermediate):
            if self.verbose:
                print(f"Iteration {report.count}, loss = {intermediate.fun + self._loss_offset:.8f}")
            report.count += 1

        report.count = 1
        start = backend.to_numpy(params).astype(np.float64)
        with backend.scope():
            result = scipy.optimize.minimize(
                objective,
                start,
                method="L-BFGS-B",
                jac=True,
                callback=report,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
            )
        if result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}): "
                f"{result.message}. Increase the number of iterations (max_iter) or the number of function "
                "evaluations (max_fun), or scale the data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.n_iter_ = min(int(result.nit), int(self.max_iter))
        self.loss_ = float(result.fun) + self._loss_offset
        params[...] = backend.asarray(result.x, params.dtype)

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, *work):
        """scikit-learn's private L-BFGS objective, which its own tests call: the loss and its gradient at
        ``packed_coef_inter`` (every ``coefs_`` then every ``intercepts_``, flattened, as scikit-learn packs them)
        for targets ``y`` in scikit-learn's encoding. The work arrays scikit-learn passes are not needed."""
        model = self.model_
        dense = self._dense_layers()
        for layer, array in zip(dense + dense, self._split_packed(packed_coef_inter), strict=True):
            name = "W" if array.ndim == 2 else "b"
            layer.params[name][...] = model.backend.asarray(array, model.dtype)
        with model.backend.scope():
            Xd, Td, Wd = model.prepare(X.astype(self._dtype_), self._targets_of(y), sample_weight=sample_weight)
            loss = model.backend.to_float(model.loss_and_gradients(Xd, Td, Wd))
        grads = [model.backend.to_numpy(layer.grads["W"]) for layer in dense]
        grads += [model.backend.to_numpy(layer.grads["b"]) for layer in dense]
        return loss + self._loss_offset, np.concatenate([g.ravel() for g in grads]).astype(np.float64)

    def _split_packed(self, packed):
        shapes = [layer.params["W"].shape for layer in self._dense_layers()]
        shapes += [layer.params["b"].shape for layer in self._dense_layers()]
        pieces, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            pieces.append(np.asarray(packed[start : start + size]).reshape(shape))
            start += size
        return pieces

    def _dense_layers(self):
        return [layer for layer in self.model_.layers if isinstance(layer, Dense)]

    def _publish(self) -> None:
        """``coefs_`` and ``intercepts_`` from the model (a bias-free layer before batch norm shows zeros)."""
        backend = self.model_.backend
        dense = self._dense_layers()
        self.coefs_ = [backend.to_numpy(layer.params["W"]).copy() for layer in dense]
        self.intercepts_ = [
            backend.to_numpy(layer.params["b"]).copy() if "b" in layer.params else np.zeros(layer.units, self._dtype_)
            for layer in dense
        ]

    def _constant_loss(self, targets, weights) -> float:
        """What scikit-learn's loss adds to netcore's (only the Poisson deviance differs by a constant)."""
        return 0.0

    def _raw(self, X):
        """The model's outputs for already validated ``X``, in the model's dtype."""
        return self.model_.predict(X.astype(self._dtype_, copy=False))

    def _checked(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False, dtype=(np.float64, np.float32))
        return X.toarray() if scipy.sparse.issparse(X) else X

    def _validation_score(self, X, y, weights) -> float:
        """The score ``early_stopping`` watches (NaN when the model's outputs are not finite)."""
        raw = self._raw(X)
        if not np.isfinite(raw).all():
            return np.nan
        return float(self._score_outputs(raw, y, weights))

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")  # fmt: skip
        return True

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
    """Multi-layer perceptron classifier on a netcore device: one logistic output for two classes, a softmax over
    more, independent logistic outputs for multi-label indicator targets (scikit-learn's choices)."""

    _parameter_constraints = {**_ScikitClassifier._parameter_constraints, **_NETCORE_CONSTRAINTS}

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


class MLPRegressor(RegressorMixin, _NetcoreMLP):
    """Multi-layer perceptron regressor on a netcore device: a linear output with the halved squared error, or
    ``loss="poisson"`` (an exponential output with the Poisson deviance, for counts)."""

    _parameter_constraints = {**_ScikitRegressor._parameter_constraints, **_NETCORE_CONSTRAINTS}

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
