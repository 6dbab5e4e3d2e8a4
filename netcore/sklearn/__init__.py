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

from netcore.sklearn.estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
