"""What ``compile`` makes of the losses, loss weights and metrics: one :class:`Head` per model output (Keras's
``CompileLoss`` and ``CompileMetrics``). A loss, weight or metric list is given once for every output, as a list in
output order, or as a dict keyed by output name."""

from __future__ import annotations

from netcore import losses as losses_mod
from netcore import metrics as metrics_mod
from netcore.errors import ConfigurationError


class Head:
    """One output as trained: its loss, the form the loss trains with (fused with the output's softmax or sigmoid
    where it can be), the loss's weight in the total and the metrics reported for it.

    ``prefix`` names the output in logs: empty for a model with one output (``loss``, ``accuracy``), else the
    output's name and an underscore (``cls_loss``, ``cls_accuracy``), as Keras names them.
    """

    def __init__(self, index: int, name: str, prefix: str, loss, weight: float, metric_names: list[str]):
        self.index, self.name, self.prefix = index, name, prefix
        self.loss, self.weight, self.metric_names = loss, float(weight), metric_names
        self.train_loss = loss
        #: The batch buffer its loss gradient is written into.
        self.grad_key = f"grad {index}"
        self.fused = False
        self.activation = None  # the output's own activation, applied to logits when evaluating a fused head

    def fuse(self, activation) -> None:
        self.fused, self.activation = True, activation
        self.train_loss = self.loss.logits_form()

    def __call__(self, backend, rows, targets, grad, weights):
        """The weighted loss of a batch, its gradient written into ``grad``."""
        loss = self.train_loss(backend, rows, targets, grad, weights)
        if self.weight != 1.0:
            grad *= self.weight
            loss = loss * self.weight
        return loss


def _per_output(value, names: list[str], what: str, default, is_single) -> list:
    """``value`` for each output: one value for all, a list in output order, or a dict keyed by output name."""
    if value is None:
        return [default() for _ in names]
    if isinstance(value, dict):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise ConfigurationError(f"{what} has entries for {unknown}, which are not outputs (those are {names})")
        missing = [name for name in names if name not in value]
        if missing and what == "loss":
            raise ConfigurationError(f"the loss dict has no entry for the output(s) {missing}; the outputs are {names}")
        return [value[name] if name in value else default() for name in names]
    if isinstance(value, (list, tuple)) and not is_single(value):
        if len(value) != len(names):
            raise ConfigurationError(
                f"{what} has {len(value)} entries for {len(names)} outputs ({names}); give one per output or a dict"
            )
        return list(value)
    return [value for _ in names]


def _is_metric_list(value) -> bool:
    """A flat list of metric names (applies to every output), as opposed to a list of such lists."""
    return all(isinstance(v, str) for v in value)


def compile_heads(names: list[str], loss, loss_weights, metrics) -> list[Head]:
    """A head per output named in ``names`` (its losses made fresh from names, shared where a Loss is given)."""
    several = len(names) > 1
    losses = _per_output(loss, names, "loss", lambda: "cross_entropy", lambda v: False)
    weights = _per_output(loss_weights, names, "loss_weights", lambda: 1.0, lambda v: False)
    per_output_metrics = _per_output(metrics, names, "metrics", list, _is_metric_list)
    heads = []
    for k, name in enumerate(names):
        chosen = per_output_metrics[k]
        chosen = [chosen] if isinstance(chosen, str) else list(chosen or [])
        try:
            weight = float(weights[k])
        except (TypeError, ValueError):
            raise ConfigurationError(f"loss_weights must be numbers, got {weights[k]!r} for {name}") from None
        if not weight >= 0:
            raise ConfigurationError(f"loss_weights must be non-negative, got {weight} for {name}")
        prefix = f"{name}_" if several else ""
        metric_names = [metrics_mod.canonical_name(m) for m in chosen]
        heads.append(Head(k, name, prefix, losses_mod.get(losses[k]), weight, metric_names))
    return heads
