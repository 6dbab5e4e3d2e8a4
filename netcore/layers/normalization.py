"""Batch normalisation, of dense features and of image channels."""

from __future__ import annotations

from netcore import initializers
from netcore.errors import ConfigurationError
from netcore.layers.base import Layer, ParamSpec, StateSpec, rows, shaped


class BatchNorm(Layer):
    """Batch normalisation: ``y = gamma (x - mean) / sqrt(var + eps) + beta`` per feature of the last axis, with
    statistics over every other axis (on images, per channel over batch, height and width: PyTorch's
    ``BatchNorm2d``, Keras's ``BatchNormalization``).

    Training normalises with the batch's mean and (biased) variance and updates running statistics; evaluation
    uses the running ones, and so does a frozen layer (``trainable=False``, as in Keras). ``convention="torch"``
    (default): ``momentum=0.1`` is the weight of the new batch, ``eps=1e-5``, the running variance is unbiased.
    ``convention="keras"``: ``momentum=0.99`` is the weight of the old value, ``eps=1e-3``, the running variance is
    the biased batch variance. Explicit ``momentum``/``eps`` override the convention's defaults and keep its meaning.

    ``sync=True``: in data-parallel training (``fit(..., distributed=True)``) the statistics are those of the whole
    batch across the processes (PyTorch's ``SyncBatchNorm``), so training matches one process; by default each
    process normalises its share with its own statistics. Elsewhere it changes nothing.
    """

    default_name = "batchnorm"

    def __init__(
        self,
        momentum: float | None = None,
        eps: float | None = None,
        convention: str = "torch",
        name: str | None = None,
        trainable: bool = True,
        sync: bool = False,
    ):
        super().__init__(name, trainable)
        self.sync = bool(sync)
        #: While distributed training runs with ``sync``: what sums arrays over the processes (``reduce``) and
        #: weighs this process's share of the batch (``fraction``).
        self.peers = None
        if convention not in ("torch", "keras"):
            raise ConfigurationError(f"BatchNorm convention must be 'torch' or 'keras', got {convention!r}")
        self.convention = convention
        default_momentum, default_eps = (0.1, 1e-5) if convention == "torch" else (0.99, 1e-3)
        self.momentum = float(default_momentum if momentum is None else momentum)
        self.eps = float(default_eps if eps is None else eps)
        if not 0 <= self.momentum <= 1 or not self.eps > 0:
            raise ConfigurationError(f"BatchNorm needs momentum in [0, 1] and eps > 0, got {self.momentum}, {self.eps}")
        self.new_weight = self.momentum if convention == "torch" else 1 - self.momentum

    def config(self):
        return {
            "momentum": self.momentum,
            "eps": self.eps,
            "convention": self.convention,
            "sync": self.sync,
            **super().config(),
        }

    def param_specs(self):
        fan = (self.n_in, self.n_in)
        return [
            ParamSpec("gamma", (self.n_in,), initializers.ones(), fan=fan),
            ParamSpec("beta", (self.n_in,), initializers.zeros(), fan=fan),
        ]

    def state_specs(self):
        return [StateSpec("running_mean", (self.n_in,), 0.0), StateSpec("running_var", (self.n_in,), 1.0)]

    def forward(self, x, training):
        backend, p, s = self.backend, self.params, self.state
        x2 = rows(x, self.n_in)  # every axis but the features (channels) is a statistics axis
        n = x2.shape[0]
        out = self.buffer("y", x2.shape, x.dtype)
        self._cache = None
        if not (training and self.trainable):
            stats = (s["running_mean"], s["running_var"])
            backend.batchnorm_forward_eval(x2, p["gamma"], p["beta"], *stats, out, eps=self.eps)
            return shaped(out, x.shape)
        if n < 2:
            raise ConfigurationError(
                f"{self.name}: batch normalisation needs at least 2 values per feature in a training batch"
            )
        xhat = self.buffer("xhat", x2.shape, x.dtype)
        inv_std = self.buffer("inv_std", (1, self.n_in), x.dtype)[0]
        arrays = (x2, p["gamma"], p["beta"], s["running_mean"], s["running_var"], out, xhat, inv_std)
        options = {"eps": self.eps, "new_weight": self.new_weight, "unbiased_running_var": self.convention == "torch"}
        if self.peers is None:
            backend.batchnorm_forward_train(*arrays, **options)
            n_all = n
        else:
            n_all = backend.batchnorm_forward_train_synced(*arrays, **options, peers=self.peers)
        self._cache = (xhat, inv_std, n_all)
        return shaped(out, x.shape)

    def backward(self, dy, need_dx):
        dy2 = rows(dy, self.n_in)
        if self._cache is None:  # frozen: an affine map of the input, whose gradient is the same map without shift
            if not need_dx:
                return None
            zeros = self.buffer("zeros", (1, self.n_in), dy.dtype)[0]
            zeros[...] = 0
            dx = self.buffer("dx", dy2.shape, dy.dtype)
            gamma, running_var = self.params["gamma"], self.state["running_var"]
            self.backend.batchnorm_forward_eval(dy2, gamma, zeros, zeros, running_var, dx, eps=self.eps)
            return shaped(dx, dy.shape)
        xhat, inv_std, n_all = self._cache
        dx = self.buffer("dx", dy2.shape, dy.dtype) if need_dx else None
        arrays = (dy2, xhat, inv_std, self.params["gamma"], dx, self.grads["gamma"], self.grads["beta"])
        if self.peers is None:
            self.backend.batchnorm_backward(*arrays)
        else:
            self.backend.batchnorm_backward_synced(*arrays, rows=n_all, peers=self.peers)
        return None if dx is None else shaped(dx, dy.shape)


class BatchNormalization(BatchNorm):
    """Keras's name, spelling and defaults for :class:`BatchNorm`: ``momentum=0.99`` (the weight of the old
    running value), ``epsilon=1e-3``."""

    default_name = "batch_normalization"

    def __init__(
        self,
        momentum: float | None = None,
        epsilon: float | None = None,
        name: str | None = None,
        trainable: bool = True,
        sync: bool = False,
        convention: str = "keras",
        eps: float | None = None,
    ):
        if epsilon is not None and eps is not None:
            raise ConfigurationError("BatchNormalization: give epsilon or eps (the same thing), not both")
        super().__init__(momentum, eps if epsilon is None else epsilon, convention, name, trainable, sync)
