"""What the two estimators share: construction of the netcore network, training (stochastic solvers through
``fit``, L-BFGS through SciPy over the flat parameter buffer), scikit-learn's fitted attributes and pickling."""

from __future__ import annotations

import os
import tempfile
import warnings
from numbers import Real

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

import netcore
from netcore.layers import Activation, BatchNorm, Dense, Dropout
from netcore.sklearn.iterations import InverseScaling, Iterations

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
)
#: netcore's parameters beside scikit-learn's.
NETCORE_CONSTRAINTS = {
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "batchnorm": ["boolean"],
    "device": [str, None],
    "dtype": [StrOptions({"float32", "float64"}), None],
}


class NetcoreMLP(BaseEstimator):
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
        iterations = Iterations(self, X.shape[0], validation, incremental)
        callbacks = [iterations]
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            callbacks.insert(0, InverseScaling(self))
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
