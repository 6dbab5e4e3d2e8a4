"""Optimizers with PyTorch's class names, parameter names, defaults and update rules.

Every optimizer updates the model's single flat parameter buffer in one backend call per step (formulas in
:mod:`backends.optimizer_kernels`, fused on numba and cupy). Its state buffers are flat too, allocated once when the
model is compiled. ``lr`` may be changed between steps (``opt.lr = ...``) and by a learning-rate schedule.
"""

from __future__ import annotations

import inspect
import math

from netcore._names import lookup
from netcore.errors import ConfigurationError


def _check(name: str, value, low: float = 0.0, high: float = math.inf, low_open: bool = False) -> float:
    value = float(value)
    bad = not math.isfinite(value) or value > high or (value <= low if low_open else value < low)
    if bad:
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigurationError(
            f"{name} must be finite and {bound}" + (f" and <= {high}" if high < math.inf else "") + f", got {value}"
        )
    return value


class _KerasSpellings(type):
    """Lets every optimizer take Keras's argument names as aliases of its own: ``learning_rate`` for ``lr``,
    ``epsilon`` for ``eps``, ``beta_1``/``beta_2`` for ``betas`` (so the Keras code of course notes runs unchanged)."""

    def __call__(cls, *args, **kwargs):
        accepted = inspect.signature(cls.__init__).parameters
        for keras, own in (("learning_rate", "lr"), ("epsilon", "eps")):
            if keras in kwargs and own in accepted:
                if own in kwargs:
                    raise ConfigurationError(f"{cls.__name__}: give {own} or {keras} (the same thing), not both")
                kwargs[own] = kwargs.pop(keras)
        if ("beta_1" in kwargs or "beta_2" in kwargs) and "betas" in accepted:
            if "betas" in kwargs:
                raise ConfigurationError(f"{cls.__name__}: give betas or beta_1/beta_2, not both")
            default = accepted["betas"].default
            kwargs["betas"] = (kwargs.pop("beta_1", default[0]), kwargs.pop("beta_2", default[1]))
        return super().__call__(*args, **kwargs)


class Optimizer(metaclass=_KerasSpellings):
    """Base class: holds hyper-parameters, the step counter and the flat state buffers. Every optimizer also takes
    Keras's spellings ``learning_rate``, ``epsilon``, ``beta_1`` and ``beta_2``."""

    #: Names of the flat state buffers, in checkpoint order.
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float, global_clipnorm: float | None = None, clipvalue: float | None = None):
        self.lr = _check("lr", lr, low_open=True)
        self.initial_lr = self.lr
        self.step_count = 0
        self.backend = None
        self.state: dict = {}
        #: Gradient clipping before every update (recurrent networks need it), as Keras's optimizers take it:
        #: ``global_clipnorm`` scales the gradient of all parameters together as ``torch.nn.utils.clip_grad_norm_``
        #: does (``g *= min(1, max_norm / (||g|| + 1e-6))``), then ``clipvalue`` clamps each entry to ``[-v, v]``.
        self.global_clipnorm = (
            None if global_clipnorm is None else _check("global_clipnorm", global_clipnorm, low_open=True)
        )
        self.clipvalue = None if clipvalue is None else _check("clipvalue", clipvalue, low_open=True)

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check("lr", value, low_open=True)

    @property
    def learning_rate(self) -> float:
        """Keras's name for :attr:`lr`."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.lr = value

    def hyperparameters(self) -> dict:
        """Constructor arguments and their current values (checkpoints and ``repr``): every subclass keeps each
        argument in an attribute of the same name."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def bind(self, backend, params) -> None:
        """Allocate zeroed state buffers shaped like the flat parameter buffer ``params``."""
        self.backend = backend
        self.state = {name: backend.zeros(params.shape, params.dtype) for name in self.active_state_names()}
        self.tmp = backend.empty(params.shape, params.dtype)

    def active_state_names(self) -> tuple[str, ...]:
        return self.state_names

    def scalar_state(self) -> dict:
        """Step counter and learning rates (checkpoints); subclasses add their own scalars."""
        return {"step_count": self.step_count, "lr": self.lr, "initial_lr": self.initial_lr}

    def load_scalar_state(self, values: dict) -> None:
        self.step_count = int(values["step_count"])
        self.lr = values["lr"]
        self.initial_lr = float(values["initial_lr"])

    def step(self, params, grads) -> None:
        """One in-place update of ``params`` from ``grads`` (``grads`` may be overwritten: clipping does)."""
        self.step_count += 1
        if self.global_clipnorm is not None:
            self.backend.clip_global_norm(grads, self.global_clipnorm)
        if self.clipvalue is not None:
            self.backend.clip_values(grads, self.clipvalue)
        self._update(params, grads)

    @property
    def clips(self) -> bool:
        return self.global_clipnorm is not None or self.clipvalue is not None

    def _update(self, params, grads) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Gradient descent with optional momentum, dampening, Nesterov momentum and (L2) weight decay.

    ``b = momentum b + (1 - dampening) g`` (``b = g`` on the first step); ``p -= lr (g + momentum b)`` with
    Nesterov, else ``p -= lr b``. Full-batch gradient descent is ``fit(..., batch_size=None)``.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, global_clipnorm, clipvalue)
        self.momentum = _check("momentum", momentum)
        self.dampening = _check("dampening", dampening)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigurationError("Nesterov momentum requires a momentum and zero dampening")

    def active_state_names(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _update(self, params, grads):
        self.backend.sgd_step(
            params,
            grads,
            self.state.get("momentum_buffer"),
            self.tmp,
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            first_step=self.step_count == 1,
        )


class Adam(Optimizer):
    """Adam with bias correction, optional AMSGrad and L2 ``weight_decay`` (added to the gradient)."""

    decoupled = False

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, global_clipnorm, clipvalue)
        self.betas = (_check("betas[0]", betas[0], high=1.0), _check("betas[1]", betas[1], high=1.0))
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)

    def active_state_names(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _update(self, params, grads):
        s = self.state
        self.backend.adam_step(
            params,
            grads,
            s["exp_avg"],
            s["exp_avg_sq"],
            s.get("max_exp_avg_sq"),
            self.tmp,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            decoupled=self.decoupled,
            amsgrad=self.amsgrad,
            step=self.step_count,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr weight_decay`` before the Adam step."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, global_clipnorm, clipvalue)


class Adagrad(Optimizer):
    """``sum += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps)``."""

    state_names = ("sum",)

    def __init__(
        self,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, global_clipnorm, clipvalue)
        self.lr_decay = _check("lr_decay", lr_decay)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.initial_accumulator_value = _check("initial_accumulator_value", initial_accumulator_value)
        self.eps = _check("eps", eps)

    def bind(self, backend, params):
        super().bind(backend, params)
        self.state["sum"][...] = self.initial_accumulator_value

    def _update(self, params, grads):
        self.backend.adagrad_step(
            params,
            grads,
            self.state["sum"],
            self.tmp,
            lr=self.lr,
            lr_decay=self.lr_decay,
            weight_decay=self.weight_decay,
            eps=self.eps,
            step=self.step_count,
        )


class RMSprop(Optimizer):
    """``s = alpha s + (1 - alpha) g^2``; ``p -= lr g / (sqrt(s) + eps)``, optionally centered and with momentum."""

    def __init__(
        self,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, global_clipnorm, clipvalue)
        self.alpha = _check("alpha", alpha, high=1.0)
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.momentum = _check("momentum", momentum)
        self.centered = bool(centered)

    def active_state_names(self):
        names = ("square_avg",)
        names += ("grad_avg",) if self.centered else ()
        return names + (("momentum_buffer",) if self.momentum else ())

    def _update(self, params, grads):
        s = self.state
        self.backend.rmsprop_step(
            params,
            grads,
            s["square_avg"],
            s.get("grad_avg"),
            s.get("momentum_buffer"),
            self.tmp,
            lr=self.lr,
            alpha=self.alpha,
            eps=self.eps,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            centered=self.centered,
        )


class Adadelta(Optimizer):
    """``s = rho s + (1 - rho) g^2``; ``d = sqrt(a + eps) / sqrt(s + eps) g``; ``a = rho a + (1 - rho) d^2``;
    ``p -= lr d``."""

    state_names = ("square_avg", "acc_delta")

    def __init__(
        self,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, global_clipnorm, clipvalue)
        self.rho = _check("rho", rho, high=1.0)
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)

    def _update(self, params, grads):
        s = self.state
        self.backend.adadelta_step(
            params,
            grads,
            s["square_avg"],
            s["acc_delta"],
            self.tmp,
            lr=self.lr,
            rho=self.rho,
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


class NAdam(Optimizer):
    """Adam with Nesterov momentum and the momentum schedule ``mu_t = b1 (1 - 0.5 * 0.96^(t momentum_decay))``."""

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        global_clipnorm: float | None = None,
        clipvalue: float | None = None,
    ):
        super().__init__(lr, global_clipnorm, clipvalue)
        self.betas = (_check("betas[0]", betas[0], high=1.0), _check("betas[1]", betas[1], high=1.0))
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.momentum_decay = _check("momentum_decay", momentum_decay)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        self.mu_product = 1.0

    def scalar_state(self):
        return {**super().scalar_state(), "mu_product": self.mu_product}

    def load_scalar_state(self, values):
        super().load_scalar_state(values)
        self.mu_product = float(values["mu_product"])

    def _update(self, params, grads):
        t, beta1 = self.step_count, self.betas[0]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.momentum_decay))
        self.mu_product *= mu
        s = self.state
        self.backend.nadam_step(
            params,
            grads,
            s["exp_avg"],
            s["exp_avg_sq"],
            self.tmp,
            lr=self.lr,
            beta1=beta1,
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            decoupled=self.decoupled_weight_decay,
            step=t,
            mu=mu,
            mu_next=mu_next,
            mu_product=self.mu_product,
            mu_product_next=self.mu_product * mu_next,
        )


_FACTORIES = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adadelta": Adadelta,
    "nadam": NAdam,
}


def from_config(name: str, hyperparameters: dict) -> Optimizer:
    """Rebuild an optimizer from its class name and :meth:`Optimizer.hyperparameters`."""
    options = dict(hyperparameters)
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return {cls.__name__: cls for cls in _FACTORIES.values()}[name](**options)


def get(spec, **kwargs) -> Optimizer:
    """An :class:`Optimizer` from a name (with keyword arguments) or an Optimizer."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        return lookup("optimizer", spec, _FACTORIES)(**kwargs)
    raise ConfigurationError(f"an optimizer is a name or an Optimizer, not {type(spec).__name__}")
