"""scikit-learn's rules for the end of an iteration and for ``learning_rate="invscaling"``, as callbacks of the
netcore training loop behind the estimators."""

from __future__ import annotations

import warnings

from sklearn.exceptions import ConvergenceWarning

from netcore import callbacks as callbacks_mod


class InverseScaling(callbacks_mod.Callback):
    """scikit-learn's ``learning_rate="invscaling"``: ``lr = learning_rate_init / (t + 1) ** power_t`` for each
    epoch, ``t`` the training samples seen before it."""

    def __init__(self, estimator):
        super().__init__()
        self.estimator = estimator

    def on_epoch_begin(self, epoch, logs=None):
        est = self.estimator
        self.model.optimizer.lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t


class Iterations(callbacks_mod.Callback):
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
