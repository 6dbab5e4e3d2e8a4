"""The fully connected layer and the activation layer.

Weights are stored for row-major batches: a Dense layer computes ``Y = f(X @ W + b)`` with ``X`` of shape
``(batch, n_in)`` and ``W`` of shape ``(n_in, n_out)``. The textbook's ``W[l]`` of shape ``(n_l, n_{l-1})``, with
examples in columns (``Z[l] = W[l] A[l-1] + b[l]``), is this ``W`` transposed: ``W[l] = W.T``. On input with more
axes, Dense applies to the last one (Keras's rule): ``(batch, h, w, c)`` becomes ``(batch, h, w, units)``.
"""

from __future__ import annotations

import warnings

from netcore import activations, initializers, regularizers
from netcore.errors import ConfigurationError
from netcore.layers.base import Layer, ParamSpec, positive_int, rows, shaped


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
        trainable: bool = True,
    ):
        super().__init__(name, trainable)
        self.units = positive_int("Dense", "units", units)
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

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = (*self.input_shape[:-1], self.units)
        return self.output_shape

    def param_specs(self):
        fan = (self.n_in, self.units)
        specs = [ParamSpec("W", fan, self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint, fan)]
        if self.use_bias:
            specs.append(ParamSpec("b", (self.units,), self.bias_initializer, self.bias_regularizer, None, fan))
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
            **super().config(),
        }

    def forward(self, x, training, logits: bool = False):
        backend, act = self.backend, self.activation
        if logits and self.emit_logits:
            act = activations.linear()
        x2 = rows(x, self.n_in)  # a view: every batch is C-contiguous
        n = x2.shape[0]
        z = self.buffer("z", (n, self.units), x.dtype)
        backend.matmul(x2, self.params["W"], out=z)
        # The output gets its own buffer: in-place element-wise kernels cannot be vectorised by a compiler that must
        # assume the input and output overlap.
        y = z if act.kind == "linear" else self.buffer("y", (n, self.units), x.dtype)
        backend.bias_activation(z, self.params.get("b"), act.kind, act.alpha, y)
        if training:
            if not act.differentiable:
                raise ConfigurationError(
                    f"{self.name}: the step activation has no gradient and cannot be trained; use sigmoid to train"
                    " a perceptron-like unit, and step only for inference"
                )
            self._cache = (x2, y, z if act.needs_preactivation else None, act)
        return shaped(y, (*x.shape[:-1], self.units))

    def backward(self, dy, need_dx):
        backend = self.backend
        x, y, z, act = self._cache
        dy = shaped(dy, y.shape)
        if act.kind == "linear":
            dz = dy
        else:
            dz = self.buffer("dz", y.shape, dy.dtype)
            backend.activation_backward(dy, y, z, act.kind, act.alpha, dz)
        if self.trainable:
            backend.matmul(x.T, dz, out=self.grads["W"])
            if self.use_bias:
                backend.column_sum(dz, out=self.grads["b"])
        if not need_dx:
            return None
        dx = self.buffer("dx", x.shape, dz.dtype)
        backend.matmul(dz, self.params["W"].T, out=dx)
        return shaped(dx, (-1, *self.input_shape)) if len(self.input_shape) > 1 else dx


class Activation(Layer):
    """An activation as a layer of its own: ``Activation("tanh")``; on input of any shape (softmax over the last
    axis)."""

    def __init__(self, activation, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        self.activation = activations.get(activation)
        self.emit_logits = False

    def config(self):
        return {"activation": self.activation.kind, "activation_alpha": self.activation.alpha, **super().config()}

    def forward(self, x, training, logits: bool = False):
        act = self.activation
        if logits and self.emit_logits:
            return x
        x2 = rows(x, x.shape[-1])
        y = self.buffer("y", x2.shape, x.dtype)
        self.backend.activation_forward(x2, act.kind, act.alpha, y)
        if training:
            if not act.differentiable:
                raise ConfigurationError(f"{self.name}: the step activation has no gradient and cannot be trained")
            self._cache = (x2, y)
        return shaped(y, x.shape)

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        if self.emit_logits:
            return dy
        x, y = self._cache
        act = self.activation
        dx = self.buffer("dx", y.shape, dy.dtype)
        self.backend.activation_backward(shaped(dy, y.shape), y, x, act.kind, act.alpha, dx)
        return shaped(dx, dy.shape)
