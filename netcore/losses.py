"""Loss functions. Each is a small object that prepares targets once per ``fit`` and calls one backend kernel per
batch for the loss and its gradient (formulas in :mod:`backends.loss_kernels`).

Reduction ``"mean"`` divides by the number of rows (row-wise losses: cross-entropy, multi-class hinge, KL) or of
elements (element-wise losses: MSE, MAE, Huber, binary cross-entropy, hinge), as PyTorch does; with sample or class
weights it is the weighted mean ``sum_i w_i l_i / sum_i w_i`` (PyTorch's rule for class weights). ``"sum"`` adds.
"""

from __future__ import annotations

from netcore._names import lookup
from netcore.errors import ConfigurationError

_REDUCTIONS = ("mean", "sum")


class Loss:
    """Base class. Subclasses name their backend ``kernel`` and say whether targets are class indices."""

    kernel = ""
    #: "rows" for losses averaged over rows, "elements" for losses averaged over every output.
    averaged_over = "elements"
    #: Activation the loss can fuse with when the model ends in it ("softmax" or "sigmoid").
    fuses_with: str | None = None
    from_logits = False

    def __init__(self, reduction: str = "mean"):
        if reduction not in _REDUCTIONS:
            raise ConfigurationError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    @property
    def name(self) -> str:
        return type(self).__name__

    def options(self) -> dict:
        """Extra keyword arguments of the kernel."""
        return {}

    def config(self) -> dict:
        """What the constructor needs to rebuild this loss (checkpoints)."""
        return {"reduction": self.reduction}

    def class_index_targets(self, n_outputs: int) -> bool:
        """Whether 1-D integer targets are class indices (else targets have the output's shape)."""
        return False

    def logits_form(self) -> Loss:
        """The same loss taking logits, for fusing with the model's final activation."""
        raise ConfigurationError(f"{self.name} has no logits form")

    #: A constant factor on the loss and its gradient (1/2 for the halved squared error).
    factor = 1.0
    #: An element-wise loss summed over a row's outputs, then averaged over rows (scikit-learn's multi-output rule).
    sum_outputs = False

    def __call__(self, backend, pred, target, grad, weights=None):
        """Loss of a batch (a backend scalar) and its gradient with respect to ``pred`` written into ``grad``."""
        n = pred.shape[0]
        per_row = 1 if self.averaged_over == "rows" or self.sum_outputs else pred.shape[1]
        if self.reduction == "sum":
            scale = self.factor
        elif weights is None:
            scale = self.factor / (n * per_row)
        else:
            weights = weights / weights.sum()
            scale = self.factor / per_row
        return getattr(backend, self.kernel)(pred, target, grad, scale, weights, **self.options())


class CrossEntropy(Loss):
    """Categorical cross-entropy ``-sum_j q_j log p_j`` with integer or one-hot/probability targets.

    ``from_logits=True`` applies softmax inside (log-sum-exp stable); a model ending in softmax uses that fused form
    automatically. ``label_smoothing`` eps replaces targets by ``(1 - eps) q + eps / C``.
    """

    averaged_over = "rows"
    fuses_with = "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0 <= label_smoothing < 1:
            raise ConfigurationError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.kernel = "softmax_cross_entropy" if from_logits else "categorical_cross_entropy"

    def options(self):
        return {"label_smoothing": self.label_smoothing}

    def config(self):
        return {**super().config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def class_index_targets(self, n_outputs):
        return True

    def logits_form(self):
        return CrossEntropy(True, self.label_smoothing, self.reduction)


class BinaryCrossEntropy(Loss):
    """``-(t log p + (1 - t) log(1 - p))`` per output; ``from_logits=True`` is the stable sigmoid form, and
    ``pos_weight`` (logits only, as PyTorch's BCEWithLogitsLoss) weights the positive term. ``sum_outputs=True``
    sums a row's outputs before averaging over rows (scikit-learn's multi-label log loss)."""

    fuses_with = "sigmoid"

    def __init__(
        self,
        from_logits: bool = False,
        pos_weight: float | None = None,
        reduction: str = "mean",
        sum_outputs: bool = False,
    ):
        super().__init__(reduction)
        self.from_logits = bool(from_logits)
        self.pos_weight = pos_weight
        self.sum_outputs = bool(sum_outputs)
        self.kernel = "sigmoid_cross_entropy" if from_logits else "binary_cross_entropy"

    def options(self):
        return {"pos_weight": self.pos_weight} if self.from_logits else {}

    def config(self):
        return {
            **super().config(),
            "from_logits": self.from_logits,
            "pos_weight": self.pos_weight,
            "sum_outputs": self.sum_outputs,
        }

    def logits_form(self):
        return BinaryCrossEntropy(True, self.pos_weight, self.reduction, self.sum_outputs)


class MeanSquaredError(Loss):
    """``(p - t)^2``; with ``half=True``, ``(p - t)^2 / 2``: the textbook's ``1/(2m)`` cost, whose gradient is
    plainly ``p - t`` (scikit-learn's regressor minimises this one)."""

    kernel = "mean_squared_error"

    def __init__(self, reduction: str = "mean", half: bool = False):
        super().__init__(reduction)
        self.half = bool(half)
        self.factor = 0.5 if self.half else 1.0

    def config(self):
        return {**super().config(), "half": self.half}


class MeanAbsoluteError(Loss):
    """``|p - t|``."""

    kernel = "mean_absolute_error"


class Huber(Loss):
    """Quadratic for ``|p - t| <= delta``, linear beyond (PyTorch's HuberLoss)."""

    kernel = "huber"

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not delta > 0:
            raise ConfigurationError(f"Huber delta must be positive, got {delta}")
        self.delta = float(delta)

    def options(self):
        return {"delta": self.delta}

    def config(self):
        return {**super().config(), "delta": self.delta}


class PoissonNLL(Loss):
    """Poisson negative log-likelihood of counts ``t`` (PyTorch's PoissonNLLLoss without the Stirling term): with
    ``log_input=True`` (default) the model outputs log-rates ``p`` and ``l = exp(p) - t p`` (a linear output layer
    is the Poisson GLM's log link); else rates and ``l = p - t log(p + eps)``. ``sum_outputs`` as for
    :class:`BinaryCrossEntropy`."""

    kernel = "poisson_nll"

    def __init__(self, log_input: bool = True, eps: float = 1e-8, reduction: str = "mean", sum_outputs: bool = False):
        super().__init__(reduction)
        if not eps > 0:
            raise ConfigurationError(f"PoissonNLL eps must be positive, got {eps}")
        self.log_input, self.eps, self.sum_outputs = bool(log_input), float(eps), bool(sum_outputs)

    def options(self):
        return {"log_input": self.log_input, "eps": self.eps}

    def config(self):
        return {**super().config(), "log_input": self.log_input, "eps": self.eps, "sum_outputs": self.sum_outputs}


class Hinge(Loss):
    """Binary hinge ``max(0, 1 - t p)`` with targets in {-1, +1} (the SVM loss)."""

    kernel = "hinge"


class MultiClassHinge(Loss):
    """``sum_{j != y} max(0, margin - p_y + p_j) / C`` (PyTorch's MultiMarginLoss) with class-index targets."""

    kernel = "multiclass_hinge"
    averaged_over = "rows"

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)

    def options(self):
        return {"margin": self.margin}

    def config(self):
        return {**super().config(), "margin": self.margin}

    def class_index_targets(self, n_outputs):
        return True


class KLDivergence(Loss):
    """``sum_j t_j log(t_j / p_j)`` between target and predicted distributions (rows of probabilities)."""

    kernel = "kl_divergence"
    averaged_over = "rows"


_FACTORIES = {
    "cross_entropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy,
    "categorical_cross_entropy": CrossEntropy,
    "sparse_categorical_crossentropy": CrossEntropy,
    "ce": CrossEntropy,
    "binary_crossentropy": BinaryCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "poisson": PoissonNLL,
    "poisson_nll": PoissonNLL,
    "hinge": Hinge,
    "multiclass_hinge": MultiClassHinge,
    "multi_margin": MultiClassHinge,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
}
_BY_CLASS = {cls.__name__: cls for cls in _FACTORIES.values()}


def get(spec) -> Loss:
    """A :class:`Loss` from a name or a Loss."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        return lookup("loss", spec, _FACTORIES)()
    raise ConfigurationError(f"a loss is a name or a Loss, not {type(spec).__name__}")


def from_config(name: str, config: dict) -> Loss:
    return _BY_CLASS[name](**config)
