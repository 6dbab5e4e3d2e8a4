"""Layers: each one small class with its parameters, ``forward`` and ``backward``.

A layer never allocates its parameters: it declares them (:meth:`Layer.param_specs`) and the model hands it views
into one flat buffer per kind (parameters, gradients), so an optimizer step is one kernel over the whole model.
Activations and gradients between layers live in per-batch-size work buffers the layer keeps, so a training step
allocates nothing once the first batch of each size has passed. ``backward`` may overwrite the ``dy`` it is given.

Weights are stored for row-major batches: a Dense layer computes ``Y = f(X @ W + b)`` with ``X`` of shape
``(batch, n_in)`` and ``W`` of shape ``(n_in, n_out)``. The textbook's ``W[l]`` of shape ``(n_l, n_{l-1})``, with
examples in columns (``Z[l] = W[l] A[l-1] + b[l]``), is this ``W`` transposed: ``W[l] = W.T``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from netcore import activations, initializers, regularizers
from netcore.errors import ConfigurationError


@dataclass
class ParamSpec:
    """A parameter a layer declares: its name, shape, initialiser, penalty and constraint."""

    name: str
    shape: tuple[int, ...]
    initializer: initializers.Initializer
    regularizer: regularizers.Regularizer | None = None
    constraint: regularizers.MaxNorm | None = None
    fan: tuple[int, int] = (1, 1)


@dataclass
class StateSpec:
    """A non-trainable array a layer keeps across steps (batch norm's running statistics)."""

    name: str
    shape: tuple[int, ...]
    initial: float


class Layer:
    """Base class. Subclasses implement :meth:`build`, :meth:`forward` and :meth:`backward`."""

    #: Whether backward needs ``dy`` at all (False only for layers that end the differentiable path).
    trainable = True

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__.lower()
        self.n_in: int | None = None
        self.n_out: int | None = None
        self.backend = None
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}
        self._buffers: dict = {}

    # ----------------------------------------------------------------- construction
    def build(self, n_in: int) -> int:
        """Fix the input width and return the output width."""
        self.n_in = self.n_out = n_in
        return n_in

    def param_specs(self) -> list[ParamSpec]:
        return []

    def state_specs(self) -> list[StateSpec]:
        return []

    def bind(self, backend, params: dict, grads: dict, state: dict) -> None:
        """Receive the views of the model's flat buffers; drop work buffers of a previous backend."""
        self.backend, self.params, self.grads, self.state = backend, params, grads, state
        self._buffers = {}

    def config(self) -> dict:
        """Constructor arguments that rebuild this layer (checkpoints, summaries)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- running
    def buffer(self, key: str, rows: int, cols: int, dtype):
        """A work buffer of shape ``(rows, cols)``, allocated once per key and batch size."""
        slot = (key, rows, cols)
        buf = self._buffers.get(slot)
        if buf is None:
            buf = self._buffers[slot] = self.backend.empty((rows, cols), dtype)
        return buf

    def forward(self, x, training: bool):
        raise NotImplementedError

    def backward(self, dy, need_dx: bool):
        """Write parameter gradients into ``self.grads`` and return ``dL/dx`` (None when not ``need_dx``)."""
        raise NotImplementedError


class Dense(Layer):
    """Fully connected layer ``Y = f(X @ W + b)``.

    ``activation`` is a name (``"relu"``, ``"sigmoid"``, ...) or an :class:`~netcore.activations.Activation`.
    ``kernel_initializer`` defaults to He for the ReLU family and Xavier for the rest; ``bias_initializer`` to zeros.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        name: str | None = None,
    ):
        super().__init__(name)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigurationError(f"Dense units must be a positive integer, got {units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer or self.activation.default_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = regularizers.get_constraint(kernel_constraint)
        if self.kernel_initializer.symmetric:
            warnings.warn(
                f"{self.name}: a constant kernel initializer gives every unit the same weights and gradients, so "
                "they never differentiate (the symmetry problem); use a random initializer",
                stacklevel=2,
            )
        #: Set by the model when it fuses this layer's softmax/sigmoid into the loss.
        self.emit_logits = False

    def build(self, n_in):
        self.n_in, self.n_out = n_in, self.units
        return self.units

    def param_specs(self):
        specs = [
            ParamSpec(
                "W",
                (self.n_in, self.units),
                self.kernel_initializer,
                self.kernel_regularizer,
                self.kernel_constraint,
                (self.n_in, self.units),
            )
        ]
        if self.use_bias:
            specs.append(
                ParamSpec(
                    "b", (self.units,), self.bias_initializer, self.bias_regularizer, None, (self.n_in, self.units)
                )
            )
        return specs

    def config(self):
        act = self.activation
        return {
            "units": self.units,
            "activation": act.kind,
            "activation_alpha": act.alpha,
            "use_bias": self.use_bias,
            "kernel_regularizer": regularizers.to_config(self.kernel_regularizer),
            "bias_regularizer": regularizers.to_config(self.bias_regularizer),
            "kernel_constraint": regularizers.to_config(self.kernel_constraint),
            "name": self.name,
        }

    def forward(self, x, training, logits: bool = False):
        backend, act = self.backend, self.activation
        if logits and self.emit_logits:
            act = activations.linear()
        n = x.shape[0]
        z = self.buffer("z", n, self.units, x.dtype)
        backend.matmul(x, self.params["W"], out=z)
        # The output gets its own buffer: in-place element-wise kernels cannot be vectorised by a compiler that must
        # assume the input and output overlap.
        y = z if act.kind == "linear" else self.buffer("y", n, self.units, x.dtype)
        backend.bias_activation(z, self.params.get("b"), act.kind, act.alpha, y)
        if training:
            if not act.differentiable:
                raise ConfigurationError(
                    f"{self.name}: the step activation has no gradient and cannot be trained; use sigmoid to train"
                    " a perceptron-like unit, and step only for inference"
                )
            self._cache = (x, y, z if act.needs_preactivation else None, act)
        return y

    def backward(self, dy, need_dx):
        backend = self.backend
        x, y, z, act = self._cache
        if act.kind == "linear":
            dz = dy
        else:
            dz = self.buffer("dz", dy.shape[0], self.units, dy.dtype)
            backend.activation_backward(dy, y, z, act.kind, act.alpha, dz)
        backend.matmul(x.T, dz, out=self.grads["W"])
        if self.use_bias:
            backend.column_sum(dz, out=self.grads["b"])
        if not need_dx:
            return None
        dx = self.buffer("dx", dz.shape[0], self.n_in, dz.dtype)
        return backend.matmul(dz, self.params["W"].T, out=dx)


class Activation(Layer):
    """An activation as a layer of its own: ``Activation("tanh")``."""

    def __init__(self, activation, name: str | None = None):
        super().__init__(name)
        self.activation = activations.get(activation)
        self.emit_logits = False

    def config(self):
        return {"activation": self.activation.kind, "activation_alpha": self.activation.alpha, "name": self.name}

    def forward(self, x, training, logits: bool = False):
        act = self.activation
        if logits and self.emit_logits:
            return x
        y = self.buffer("y", x.shape[0], self.n_out, x.dtype)
        self.backend.activation_forward(x, act.kind, act.alpha, y)
        if training:
            if not act.differentiable:
                raise ConfigurationError(f"{self.name}: the step activation has no gradient and cannot be trained")
            self._cache = (x, y)
        return y

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        x, y = self._cache
        act = self.activation
        if self.emit_logits:
            return dy
        dx = self.buffer("dx", dy.shape[0], self.n_in, dy.dtype)
        return self.backend.activation_backward(dy, y, x, act.kind, act.alpha, dx)


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the rest by
    ``1 / (1 - rate)``, so evaluation needs no rescaling. Masks come from the model's seeded generator."""

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name)
        if not (isinstance(rate, (int, float)) and 0 <= rate < 1):
            raise ConfigurationError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.rng = None  # the model's generator, set by the model

    def config(self):
        return {"rate": self.rate, "name": self.name}

    def forward(self, x, training):
        if not training or self.rate == 0:
            self._mask = None
            return x
        n = x.shape[0]
        mask = self.buffer("mask", n, self.n_in, x.dtype)
        out = self.buffer("y", n, self.n_in, x.dtype)
        self._mask = mask
        return self.backend.dropout_forward(x, self.rate, self.rng, mask, out)

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        if self._mask is None:
            return dy
        return self.backend.dropout_backward(dy, self._mask, out=dy)


class GaussianNoise(Layer):
    """Adds ``N(0, stddev^2)`` noise in training (data augmentation / regularisation); identity in evaluation."""

    def __init__(self, stddev: float, name: str | None = None):
        super().__init__(name)
        if not stddev >= 0:
            raise ConfigurationError(f"GaussianNoise stddev must be >= 0, got {stddev!r}")
        self.stddev = float(stddev)
        self.rng = None

    def config(self):
        return {"stddev": self.stddev, "name": self.name}

    def forward(self, x, training):
        if not training or self.stddev == 0:
            return x
        out = self.buffer("y", x.shape[0], self.n_in, x.dtype)
        return self.backend.gaussian_noise(x, self.stddev, self.rng, out)

    def backward(self, dy, need_dx):
        return dy if need_dx else None


@dataclass
class _Convention:
    momentum: float
    eps: float
    new_weight: float
    unbiased: bool = field(default=True)


class BatchNorm(Layer):
    """Batch normalisation of dense features: ``y = gamma (x - mean) / sqrt(var + eps) + beta``.

    Training normalises with the batch's mean and (biased) variance and updates running statistics; evaluation
    uses the running ones. ``convention="torch"`` (default): ``momentum=0.1`` is the weight of the new batch,
    ``eps=1e-5``, the running variance is unbiased. ``convention="keras"``: ``momentum=0.99`` is the weight of the
    old value, ``eps=1e-3``, the running variance is the biased batch variance. Explicit ``momentum``/``eps``
    override the convention's defaults and keep its meaning.
    """

    def __init__(
        self,
        momentum: float | None = None,
        eps: float | None = None,
        convention: str = "torch",
        name: str | None = None,
    ):
        super().__init__(name)
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
        return {"momentum": self.momentum, "eps": self.eps, "convention": self.convention, "name": self.name}

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
        n = x.shape[0]
        out = self.buffer("y", n, self.n_in, x.dtype)
        if not training:
            return backend.batchnorm_forward_eval(
                x, p["gamma"], p["beta"], s["running_mean"], s["running_var"], out, eps=self.eps
            )
        if n < 2:
            raise ConfigurationError(f"{self.name}: batch normalisation needs at least 2 rows per training batch")
        xhat = self.buffer("xhat", n, self.n_in, x.dtype)
        inv_std = self.buffer("inv_std", 1, self.n_in, x.dtype)[0]
        backend.batchnorm_forward_train(
            x,
            p["gamma"],
            p["beta"],
            s["running_mean"],
            s["running_var"],
            out,
            xhat,
            inv_std,
            eps=self.eps,
            new_weight=self.new_weight,
            unbiased_running_var=self.convention == "torch",
        )
        self._cache = (xhat, inv_std)
        return out

    def backward(self, dy, need_dx):
        xhat, inv_std = self._cache
        dx = self.buffer("dx", dy.shape[0], self.n_in, dy.dtype) if need_dx else None
        self.backend.batchnorm_backward(
            dy, xhat, inv_std, self.params["gamma"], dx, self.grads["gamma"], self.grads["beta"]
        )
        return dx


_LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Dropout, GaussianNoise, BatchNorm)}


def from_config(kind: str, config: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.config` (the activation parameter travels as ``activation_alpha``)."""
    config = dict(config)
    alpha = config.pop("activation_alpha", None)
    if "activation" in config:
        config["activation"] = activations.Activation(config["activation"], alpha or 0.0)
    return _LAYERS[kind](**config)
