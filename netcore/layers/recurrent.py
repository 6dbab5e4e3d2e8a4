"""Recurrent layers over sequences ``(batch, time, features)``: SimpleRNN, LSTM and GRU with Keras's names,
arguments and weight layout (``kernel (features, k * units)``, ``recurrent_kernel (units, k * units)``, ``bias``),
so weights can be compared and exchanged.

A layer runs time-major inside: the input projection ``x W + b`` of every step is one matrix product, then the
backend's pass over the steps (each the recurrent product ``h U`` and one kernel for the gates and the state update;
one compiled call for all of them where the backend has one). The backward pass runs the steps in reverse with one
product per step for the state's gradient, and forms every weight gradient afterwards with one product over all
steps (nothing is accumulated per step).
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore import activations, initializers, regularizers
from netcore.errors import ConfigurationError, ShapeError
from netcore.layers.base import Layer, ParamSpec, batch_blocks, positive_int, sum_in_order


@dataclass(frozen=True)
class _UnitForgetBias(initializers.Initializer):
    """Keras's ``unit_forget_bias``: the forget gate's bias starts at 1 (so the cell remembers at first)."""

    base: initializers.Initializer
    units: int

    def __call__(self, backend, rng, shape, fan_in, fan_out, dtype):
        value = self.base(backend, rng, shape, fan_in, fan_out, dtype)
        value[self.units : 2 * self.units] = 1
        return value


class _Recurrent(Layer):
    """Shared by SimpleRNN, LSTM and GRU: shapes, weights, the time-major input projection and the weight gradients
    over all steps. Subclasses run the steps (:meth:`run_steps`, :meth:`run_steps_backward`)."""

    #: Gate blocks side by side in the kernels (1, 4 or 3).
    blocks = 1

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        name: str | None = None,
        trainable: bool = True,
    ):
        super().__init__(name, trainable)
        owner = type(self).__name__
        self.units = positive_int(owner, "units", units)
        self.activation = activations.get(activation)
        if not self.activation.elementwise or not self.activation.differentiable:
            raise ConfigurationError(f"{owner} activation must be differentiable element by element, not "
                                     f"{self.activation.kind!r}")  # fmt: skip
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.return_sequences = bool(return_sequences)
        if return_state:
            raise ConfigurationError(
                f"{owner} return_state=True gives the layer several outputs (the output and its states); a "
                "Sequential model passes one from layer to layer: use return_sequences=True to pass every step on"
            )
        self.return_state = False
        self.go_backwards = bool(go_backwards)

    # ----------------------------------------------------------------- shapes and weights
    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(
                f"{self.name} ({type(self).__name__}) takes sequences (time, features), got input shape "
                f"{tuple(input_shape)}; give the model input_shape=(time, features) or reshape with Reshape"
            )
        self.input_shape = tuple(input_shape)
        steps = self.input_shape[0]
        self.output_shape = (steps, self.units) if self.return_sequences else (self.units,)
        return self.output_shape

    @property
    def width(self) -> int:
        """Columns of the kernels: ``blocks * units``."""
        return self.blocks * self.units

    def bias_shape(self) -> tuple[int, ...]:
        return (self.width,)

    def bias_spec_initializer(self) -> initializers.Initializer:
        return self.bias_initializer

    def param_specs(self):
        features, width = self.n_in, self.width
        specs = [
            ParamSpec(
                "kernel", (features, width), self.kernel_initializer, self.kernel_regularizer, None, (features, width)
            ),
            ParamSpec(
                "recurrent_kernel",
                (self.units, width),
                self.recurrent_initializer,
                self.recurrent_regularizer,
                None,
                (self.units, width),
            ),
        ]
        if self.use_bias:
            bias = self.bias_spec_initializer()
            specs.append(ParamSpec("bias", self.bias_shape(), bias, self.bias_regularizer, None, (features, width)))
        return specs

    def config(self):
        return {
            "units": self.units,
            "activation": self.activation.kind,
            "activation_alpha": self.activation.alpha,
            "use_bias": self.use_bias,
            "kernel_regularizer": regularizers.to_config(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.to_config(self.recurrent_regularizer),
            "bias_regularizer": regularizers.to_config(self.bias_regularizer),
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
            **super().config(),
        }

    # ----------------------------------------------------------------- the pass over time
    def input_bias(self):
        """The bias added to the input projection (all of it, but for GRU's separate recurrent bias), or None."""
        return self.params.get("bias")

    def bind(self, backend, params: dict, grads: dict, state: dict, owner=None) -> None:
        super().bind(backend, params, grads, state, owner)
        self._block_twins: dict[int, list] = {}

    def _split(self, n: int):
        """``(blocks, twins)``: the batch's rows as blocks, one per block thread of the backend, each run by a twin
        bound to this layer's weights (sequences are independent of one another, so each block runs its whole pass
        over time on its own thread, BLAS on that thread); None where one block does it all. The split is decided
        per call, so a model whose other layers are dense keeps BLAS's threads for them."""
        work = self.backend.recurrent_block_work
        if work is None:
            return None
        count = min(self.backend.block_threads, n * self.width // work)
        if count < 2:
            return None
        twins = self._block_twins.get(count)
        if twins is None:
            twins = self._block_twins[count] = [self._block_twin() for _ in range(count)]
        for twin in twins:
            twin.trainable = self.trainable
        return batch_blocks(n, count), twins

    def _block_twin(self):
        twin = self.twin()
        twin.build(self.input_shape)
        dtype = self.params["kernel"].dtype
        own = {spec.name: self.backend.zeros(spec.shape, dtype) for spec in self.param_specs()}
        twin.bind(self.backend, self.params, own, self.state, owner=self.owner)
        return twin

    def forward(self, x, training):
        split = self._split(x.shape[0])
        if split is None:
            return self._forward(x, training)
        blocks, twins = split
        y = self.buffer("y of blocks", self.batch_shape(x.shape[0]), x.dtype)

        def run(lane, index):
            rows, twin = blocks[index], twins[index]
            twin.mask = None if self.mask is None else self.mask[rows]
            y[rows] = twin._forward(x[rows], training)

        self._on_blocks(run, len(blocks))
        return y

    def backward(self, dy, need_dx):
        split = self._split(dy.shape[0])
        if split is None:
            return self._backward(dy, need_dx)
        blocks, twins = split
        dx = self.buffer("dx of blocks", (dy.shape[0], *self.input_shape), dy.dtype) if need_dx else None

        def run(lane, index):
            rows = blocks[index]
            part = twins[index]._backward(dy[rows], need_dx)
            if dx is not None:
                dx[rows] = part

        self._on_blocks(run, len(blocks))
        if self.trainable:
            for name, grad in self.grads.items():
                sum_in_order(grad, [twin.grads[name] for twin in twins])
        return dx

    def _on_blocks(self, run, count: int) -> None:
        """``run(lane, index)`` for every block on the backend's threads, BLAS on each of them."""
        with self.backend.owning_cores():
            self.backend.map_blocks(run, count)

    def _forward(self, x, training):
        backend = self.backend
        n, steps, features = x.shape
        xt = self.buffer("xt", (steps, n, features), x.dtype)
        xt[...] = (x[:, ::-1] if self.go_backwards else x).transpose(1, 0, 2)  # time-major, in processing order
        xw = self.buffer("xw", (steps, n, self.width), x.dtype)
        flat = xw.reshape(steps * n, self.width)
        backend.matmul(xt.reshape(steps * n, features), self.params["kernel"], out=flat)  # the bias: in the pass
        h = self.buffer("h", (steps + 1, n, self.units), x.dtype)
        h[0] = 0  # the initial state
        masked = None
        if self.mask is not None:  # padded steps (Masking): the state goes through them unchanged
            masked = backend.time_major_masked(self.mask, self.go_backwards, self.buffer("masked", (steps, n), "bool"))
        self.run_steps(xw, h, masked)
        self._cache = (xt, h, masked)
        if not self.return_sequences:
            return h[steps]
        y = self.buffer("y", (n, steps, self.units), x.dtype)
        y[...] = h[1:].transpose(1, 0, 2)
        if masked is not None:
            backend.fill_masked(masked.T, y, 0)  # a padded step outputs zeros
        return y

    def _backward(self, dy, need_dx):
        backend = self.backend
        xt, h, masked = self._cache
        steps, n, features = xt.shape
        dh = self.buffer("dh", (steps, n, self.units), dy.dtype)  # the output's gradient per step, time-major
        if self.return_sequences:
            dh[...] = dy.transpose(1, 0, 2)
            if masked is not None:
                backend.fill_masked(masked, dh, 0)  # padded steps output constants
        else:
            dh[...] = 0
            dh[steps - 1] = dy
        dzx, dzh = self.run_steps_backward(dh, h, masked)
        rows = steps * n
        dzx2, dzh2 = dzx.reshape(rows, self.width), dzh.reshape(rows, self.width)
        if self.trainable:
            inputs, states = xt.reshape(rows, features), h[:steps].reshape(rows, self.units)
            self._kernel_gradients(inputs, states, dzx2, None if dzh is dzx else dzh2)
            if self.use_bias:
                self.bias_gradients(dzx2, dzh2)
        if not need_dx:
            return None
        dxt = self.buffer("dxt", xt.shape, dy.dtype)
        backend.matmul(dzx2, self.params["kernel"].T, out=dxt.reshape(rows, features))
        dx = self.buffer("dx", (n, steps, features), dy.dtype)
        (dx[:, ::-1] if self.go_backwards else dx)[...] = dxt.transpose(1, 0, 2)
        return dx

    def _kernel_gradients(self, inputs, states, dzx, dzh) -> None:
        """The kernel's gradient ``inputs^T dzx`` and the recurrent kernel's ``states^T dzh`` (a row per step and
        sequence). Where the two are taken of one gradient (``dzh`` None: SimpleRNN, LSTM), one product of the inputs
        and states side by side: 9% less than the two at W6's LSTM block (32 + 128 rows of 1,600 by 512), the
        side-by-side copy included."""
        backend, features = self.backend, inputs.shape[1]
        if dzh is not None:
            backend.matmul(inputs.T, dzx, out=self.grads["kernel"])
            backend.matmul(states.T, dzh, out=self.grads["recurrent_kernel"])
            return
        both = self.buffer("inputs and states", (inputs.shape[0], features + self.units), inputs.dtype)
        both[:, :features] = inputs
        both[:, features:] = states
        gradients = self.buffer("kernel gradients", (features + self.units, self.width), dzx.dtype)
        backend.matmul(both.T, dzx, out=gradients)
        self.grads["kernel"][...] = gradients[:features]
        self.grads["recurrent_kernel"][...] = gradients[features:]

    def bias_gradients(self, dzx, dzh) -> None:
        self.backend.column_sum(dzx, out=self.grads["bias"])

    def run_steps(self, xw, h, masked) -> None:
        """Every step's state into ``h[1:]`` (the states of masked rows held), by the backend's pass."""
        raise NotImplementedError

    def run_steps_backward(self, dh, h, masked):
        """The gradients of the input projection and of the recurrent product at every step (the same array but
        for GRU), by the backend's pass."""
        raise NotImplementedError

    def step_scratch(self, count: int, like):
        """``count`` arrays of one step's state, for a backward pass."""
        scratch = self.buffer("step scratch", (count, *like.shape[1:]), like.dtype)
        return tuple(scratch)


class SimpleRNN(_Recurrent):
    """The plain recurrent layer: ``h_t = f(x_t W + h_{t-1} U + b)`` (``activation="tanh"``; any element-wise
    activation). Its gradient through many steps is a product of Jacobians that vanishes or explodes: the reason
    LSTM and GRU exist."""

    def run_steps(self, xw, h, masked) -> None:
        act = self.activation
        z = self.buffer("z", xw.shape, xw.dtype)  # the pre-activation of every step
        u = self.params["recurrent_kernel"]
        self.backend.rnn_forward(xw, self.input_bias(), u, h, z, act.kind, act.alpha, masked)

    def run_steps_backward(self, dh, h, masked):
        act = self.activation
        z = self.buffer("z", dh.shape, dh.dtype)
        dz = self.buffer("dz", dh.shape, dh.dtype)
        u = self.params["recurrent_kernel"]
        self.backend.rnn_backward(dh, u, h, z, dz, act.kind, act.alpha, self.step_scratch(2, dh), masked)
        return dz, dz


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter and Schmidhuber): gates ``i, f, o = sigmoid(.)`` and candidate ``g =
    tanh(.)`` of ``x_t W + h_{t-1} U + b`` (blocks in Keras's order i, f, c, o); ``c_t = f c_{t-1} + i g``, ``h_t = o
    tanh(c_t)``. The cell's additive update carries gradients across many steps. ``unit_forget_bias=True`` starts
    the forget gate's bias at 1, as Keras does."""

    blocks = 4

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias: bool = True,
                 **options):  # fmt: skip
        _standard_gates("LSTM", activation, recurrent_activation)
        super().__init__(units, activation, **options)
        self.unit_forget_bias = bool(unit_forget_bias)

    def bias_spec_initializer(self):
        if self.unit_forget_bias:
            return _UnitForgetBias(self.bias_initializer, self.units)
        return self.bias_initializer

    def config(self):
        return {**super().config(), "unit_forget_bias": self.unit_forget_bias}

    def run_steps(self, xw, h, masked) -> None:
        c = self.buffer("c", h.shape, xw.dtype)
        c[0] = 0
        gates = self.buffer("gates", xw.shape, xw.dtype)
        hu = self.buffer("hu", xw.shape[1:], xw.dtype)
        u = self.params["recurrent_kernel"]
        self.backend.lstm_forward(xw, self.input_bias(), u, h, c, gates, hu, masked)

    def run_steps_backward(self, dh, h, masked):
        c = self.buffer("c", h.shape, dh.dtype)
        gates = self.buffer("gates", (*dh.shape[:2], self.width), dh.dtype)
        dz = self.buffer("dz", gates.shape, dh.dtype)
        u = self.params["recurrent_kernel"]
        self.backend.lstm_backward(dh, u, c, gates, dz, self.step_scratch(4, dh), masked)
        return dz, dz


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al.), Keras's ``reset_after=True`` form, which is PyTorch's: update and reset
    gates ``z, r = sigmoid(x W + b_x + h_{t-1} U + b_h)``, candidate ``n = tanh(x W_h + b_xh + r (h_{t-1} U_h +
    b_hh))``, ``h_t = z h_{t-1} + (1 - z) n`` (blocks in Keras's order z, r, h). The bias is ``(2, 3 units)``: the
    input bias, then the recurrent one."""

    blocks = 3

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", reset_after: bool = True,
                 **options):  # fmt: skip
        _standard_gates("GRU", activation, recurrent_activation)
        if not reset_after:
            raise ConfigurationError(
                "GRU reset_after=False (the reset gate applied before the recurrent product, Keras 2's default) is "
                "not provided; reset_after=True is Keras 3's default and PyTorch's GRU"
            )
        super().__init__(units, activation, **options)
        self.reset_after = True

    def bias_shape(self):
        return (2, self.width)

    def input_bias(self):
        return self.params["bias"][0] if self.use_bias else None

    def config(self):
        return {**super().config(), "reset_after": self.reset_after}

    def run_steps(self, xw, h, masked) -> None:
        hu = self.buffer("hu", xw.shape, xw.dtype)  # the recurrent products, kept for the backward pass
        gates = self.buffer("gates", xw.shape, xw.dtype)
        b_u = self.params["bias"][1] if self.use_bias else None
        u = self.params["recurrent_kernel"]
        self.backend.gru_forward(xw, self.input_bias(), u, b_u, h, hu, gates, masked)

    def run_steps_backward(self, dh, h, masked):
        shape = (*dh.shape[:2], self.width)
        hu, gates = self.buffer("hu", shape, dh.dtype), self.buffer("gates", shape, dh.dtype)
        dzx, dzh = self.buffer("dzx", shape, dh.dtype), self.buffer("dzh", shape, dh.dtype)
        u = self.params["recurrent_kernel"]
        self.backend.gru_backward(dh, u, h, gates, hu, dzx, dzh, self.step_scratch(3, dh), masked)
        return dzx, dzh

    def bias_gradients(self, dzx, dzh) -> None:
        self.backend.column_sum(dzx, out=self.grads["bias"][0])
        self.backend.column_sum(dzh, out=self.grads["bias"][1])


def _standard_gates(owner: str, activation, recurrent_activation) -> None:
    """LSTM and GRU run fused gate kernels for tanh states and sigmoid gates (the standard cells, Keras's and
    PyTorch's defaults)."""
    if activations.get(activation).kind != "tanh" or activations.get(recurrent_activation).kind != "sigmoid":
        raise ConfigurationError(
            f"{owner} computes the standard cell: activation='tanh' and recurrent_activation='sigmoid' "
            f"(got {activation!r} and {recurrent_activation!r})"
        )
