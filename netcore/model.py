"""The Sequential model: owns the device, the flat parameter buffers, the seeded generator and the training loop."""

from __future__ import annotations

import contextlib
import math
import time

from backends import get_backend
from netcore import graphs, streaming, training, validation
from netcore import layers as layers_mod
from netcore import losses as losses_mod
from netcore import metrics as metrics_mod
from netcore import optimizers as optimizers_mod
from netcore.errors import ConfigurationError, DTypeError, NetcoreError, OutOfMemoryError, ShapeError
from netcore.layers.base import sample_shape


class Scores(dict):
    """What :meth:`Sequential.evaluate` returns: ``{"loss": ..., "accuracy": ...}``, which Keras code may also index
    by position as the list Keras returns (``score[0]`` is the loss, ``score[1]`` the first metric). It stays a
    dict: iterating gives the names, so unpack ``loss, accuracy = model.evaluate(...).values()``."""

    def __getitem__(self, key):
        if isinstance(key, int) and not isinstance(key, bool):
            return list(self.values())[key]
        return super().__getitem__(key)


class History:
    """What :meth:`Sequential.fit` returns: ``history["loss"]``, ``history["val_accuracy"]``, ... one value per
    epoch, plus ``epoch`` (0-based indices) and ``interrupted``."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False
        self.stop_reason: str | None = None

    def record(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _prod(shape) -> int:
    return math.prod(shape)


def _unique_names(layers) -> None:
    """Number repeated layer names (dense, dense_1, ...) so errors and reports can name one layer."""
    seen: dict[str, int] = {}
    for layer in layers:
        count = seen.get(layer.name, 0)
        seen[layer.name] = count + 1
        if count:
            layer.name = f"{layer.name}_{count}"


class Sequential:
    """A stack of layers trained end to end.

    ``Sequential([Dense(64, "relu"), Dense(10, "softmax")], input_dim=64, device="numba", seed=0)``, or for images
    ``Sequential([Conv2D(16, 3, activation="relu"), ...], input_shape=(28, 28, 1))`` (a sample's shape, without the
    batch axis; images are channels-last). ``input_dim=n`` means ``input_shape=(n,)``; without either, the model is
    built on the first data it sees. The device is a name (``"numpy"``, ``"numba"``, ``"cupy"``, ``"cpu"``,
    ``"auto"``, ...) or None for the active device; ``dtype`` is ``"float32"`` (default) or ``"float64"``; ``seed``
    fixes weights, shuffles, dropout masks and augmentations.

    Layers that already carry weights (``base.layers[:-1]`` of a trained model) keep them: that is transfer
    learning. A layer object then belongs to both models and shares its weights between them, as in Keras.
    """

    def __init__(
        self,
        layers=None,
        input_dim: int | None = None,
        device=None,
        dtype: str = "float32",
        seed: int | None = None,
        auto_transfer: bool = False,
        input_shape=None,
    ):
        self.layers = []
        for layer in list(layers or []):
            self._check_new_layer(layer)
            self.layers.append(layer)
        _unique_names(self.layers)
        self.backend = get_backend(device)
        self.dtype_name = str(dtype)
        self.dtype = self.backend.float_dtype(self.dtype_name)
        self.seed = seed
        self.rng = self.backend.rng(seed)
        self.input_shape: tuple[int, ...] | None = None
        self.optimizer = None
        self.loss = None
        self.schedule = None
        self.epochs_trained = 0
        #: JSON-able notes saved with the model (the command line keeps the data set and its scaling here).
        self.metadata: dict = {}
        self.metric_names: list[str] = []
        self.training = True
        self._fused = False
        self._current_layer = None
        #: Identifies this model's binding of its layers (see :meth:`_claim`).
        self._token = object()
        #: Copy arrays of another device in (True) or refuse them with a DeviceError (False, the default).
        self.auto_transfer = bool(auto_transfer)
        self._declared_shape = sample_shape(input_dim, input_shape)
        self._build_declared()

    def _check_new_layer(self, layer) -> None:
        if not isinstance(layer, layers_mod.Layer):
            raise ConfigurationError(f"Sequential takes netcore layers, not {type(layer).__name__}")
        if any(layer is other for other in self.layers):
            raise ConfigurationError("a layer object appears twice in the model; create one object per layer")

    def add(self, layer) -> Sequential:
        """Append ``layer`` (Keras's ``model = Sequential(); model.add(Dense(64, input_dim=10)); ...``). The model
        is built when first needed (compile, summary, fit), so a seed draws the same weights as the list form. A
        model built already is rebuilt keeping its layers' weights, and recompiled if it was compiled; adding to a
        model that has trained is refused."""
        if self.epochs_trained or (self.optimizer is not None and self.optimizer.step_count):
            raise ConfigurationError("add() builds a model before training; this one has trained already")
        self._check_new_layer(layer)
        self.layers.append(layer)
        _unique_names(self.layers)
        if self.built:
            self.build(self.input_shape)
            if self.optimizer is not None:
                self.compile(self.optimizer, self.loss, self.metric_names, self.schedule)
        return self

    def _build_declared(self) -> None:
        """Build from the declared input shape (the model's, else its first layer's), if any and not built yet."""
        if self.built or not self.layers:
            return
        first = self.layers[0].declared_input_shape
        if self._declared_shape and first and self._declared_shape != first:
            raise ConfigurationError(
                f"the model's input shape {self._declared_shape} and its first layer's {first} disagree; give one"
            )
        shape = self._declared_shape or first
        if shape is not None:
            self.build(shape)

    # ----------------------------------------------------------------- construction
    @property
    def built(self) -> bool:
        return self.input_shape is not None

    @property
    def input_dim(self) -> int | None:
        """Values per sample (the features of a table; height x width x channels of an image)."""
        return None if self.input_shape is None else _prod(self.input_shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    @property
    def n_outputs(self) -> int:
        """Width of the output's last axis: the loss applies over it (Keras's rule), so a sequence output
        ``(time, k)`` is ``time`` rows of the loss per sample, and an image output one row per pixel."""
        return self.layers[-1].output_shape[-1]

    def build(self, input_shape) -> None:
        """Fix the input shape (an int means a table of that many features), allocate the flat buffers, and draw
        the initial weights of every layer that does not carry weights already."""
        shape = sample_shape(input_shape, None)
        for layer in self.layers:  # layers this build changes must be re-checked by the model they come from
            if layer.owner is not self._token:
                layer.owner = None
        self._infer_shapes(shape)
        self._check_carried()
        carried = self._allocate(tuple(layer.trainable for layer in self.layers))
        self.input_shape = shape
        for layer in self.layers:  # in layer order, so a seed gives the same weights whatever is frozen
            for spec in layer.param_specs():
                if spec.name not in carried[id(layer)][1]:
                    fan_in, fan_out = spec.fan
                    layer.params[spec.name][...] = spec.initializer(
                        self.backend, self.rng, spec.shape, fan_in, fan_out, self.dtype
                    )
            for spec in layer.state_specs():
                if spec.name not in carried[id(layer)][2]:
                    layer.state[spec.name][...] = spec.initial
        self._carry(carried)

    def _infer_shapes(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Fix every layer's input and output shape (no allocation); returns the output shape."""
        shape = input_shape
        weighted = None
        for layer in self.layers:
            if layer.input_only and weighted is not None:
                raise ConfigurationError(
                    f"{layer.name} ({type(layer).__name__}) transforms the input and has no gradient: put it before "
                    f"every layer with weights (it comes after {weighted})"
                )
            shape = layer.build(shape)
            if layer.has_weights and weighted is None:
                weighted = layer.name
        return shape

    def _allocate(self, trainable: tuple[bool, ...]) -> dict:
        """Lay out the flat buffers for the given trainable flags, one per layer, and bind every layer to its views.

        Trainable parameters come first, so the optimizer updates one contiguous prefix and frozen weights are never
        touched. Returns each layer's views from before (``{id: (backend, params, state)}``) for :meth:`_carry`.
        """
        previous = {id(layer): (layer.backend, dict(layer.params), dict(layer.state)) for layer in self.layers}
        self._layout = trainable
        frozen = {id(layer) for layer, flag in zip(self.layers, trainable, strict=True) if not flag}
        specs = [(layer, spec) for layer in self.layers for spec in layer.param_specs()]
        self._specs = [s for s in specs if id(s[0]) not in frozen] + [s for s in specs if id(s[0]) in frozen]
        self._state_specs = [(layer, spec) for layer in self.layers for spec in layer.state_specs()]
        n_params = sum(_prod(spec.shape) for _, spec in self._specs)
        n_trained = sum(_prod(spec.shape) for layer, spec in self._specs if id(layer) not in frozen)
        n_state = sum(_prod(spec.shape) for _, spec in self._state_specs)
        self._params = self.backend.empty((n_params,), self.dtype)
        self._grads = self.backend.zeros((n_params,), self.dtype)
        self._state = self.backend.empty((n_state,), self.dtype)
        self._n_trained = n_trained
        trained = [(layer, spec) for layer, spec in self._specs if id(layer) not in frozen]
        self._n_trained_specs = len(trained)
        self._has_penalties = any(spec.regularizer is not None for _, spec in trained)
        self._has_constraints = any(spec.constraint is not None for _, spec in trained)
        #: Backpropagation stops at the first layer whose weights train: nothing below it needs a gradient.
        self._first_trained = next(
            (i for i, layer in enumerate(self.layers) if layer.has_weights and id(layer) not in frozen),
            len(self.layers),
        )
        self._bind()
        return previous

    def _check_carried(self) -> None:
        """Layers that bring weights must have been built for weights of the shapes this model gives them."""
        for layer in self.layers:
            for store, specs in ((layer.params, layer.param_specs()), (layer.state, layer.state_specs())):
                for spec in specs:
                    value = store.get(spec.name)
                    if value is not None and tuple(value.shape) != tuple(spec.shape):
                        raise ShapeError(
                            f"{layer.name} carries {spec.name} of shape {tuple(value.shape)} from the model it was "
                            f"trained in, but here its input {layer.input_shape} needs {tuple(spec.shape)}"
                        )

    def _carry(self, previous: dict) -> None:
        """Copy the weights and running statistics layers had before :meth:`_allocate` into their new views
        (converted to this model's device and dtype)."""
        for layer in self.layers:
            old_backend, old_params, old_state = previous[id(layer)]
            for store, old in ((layer.params, old_params), (layer.state, old_state)):
                for name, value in old.items():
                    target = store.get(name)
                    if target is None:
                        continue
                    if old_backend is self.backend:
                        target[...] = value
                    else:
                        target[...] = self.backend.asarray(old_backend.to_numpy(value), self.dtype)

    def _claim(self) -> None:
        """Take back layers another model has used since (transfer learning shares layer objects between models):
        re-fix their shapes for this model's input and copy their current weights into this model's buffers."""
        if not self.built or all(layer.owner is self._token for layer in self.layers):
            return
        self._infer_shapes(self.input_shape)
        self._check_carried()
        self._carry(self._allocate(self._layout))

    def normalizes_batches(self) -> bool:
        """Whether a training step normalises with batch statistics (a trainable BatchNorm)."""
        return any(isinstance(layer, layers_mod.BatchNorm) and layer.trainable for layer in self.layers)

    def _check_layout(self) -> None:
        """Training needs the trainable flags the buffers were laid out for (a change takes effect at compile)."""
        for layer, flag in zip(self.layers, self._layout, strict=True):
            if layer.trainable != flag:
                state = "frozen (trainable=False)" if flag else "unfrozen (trainable=True)"
                raise ConfigurationError(
                    f"layer {layer.name} was {state} after compile(); call compile() again for the change to take "
                    "effect"
                )

    def _bind(self) -> None:
        """Hand every layer its views into the flat buffers (after build and after a device move)."""
        #: What the optimizer updates: the trainable prefix of the flat buffers.
        self._trained_params, self._trained_grads = self._params[: self._n_trained], self._grads[: self._n_trained]
        views = {id(layer): ({}, {}, {}) for layer in self.layers}
        offset = 0
        for layer, spec in self._specs:
            size = _prod(spec.shape)
            views[id(layer)][0][spec.name] = self._params[offset : offset + size].reshape(spec.shape)
            views[id(layer)][1][spec.name] = self._grads[offset : offset + size].reshape(spec.shape)
            offset += size
        offset = 0
        for layer, spec in self._state_specs:
            size = _prod(spec.shape)
            views[id(layer)][2][spec.name] = self._state[offset : offset + size].reshape(spec.shape)
            offset += size
        for layer in self.layers:
            layer.bind(self.backend, *views[id(layer)], owner=self._token)
            if hasattr(layer, "rng"):
                layer.rng = self.rng
        self._batch_buffers = {}

    def compile(self, optimizer="adam", loss="cross_entropy", metrics=None, schedule=None) -> Sequential:
        """Choose the optimizer and loss (objects or names), the metrics reported by fit and evaluate, and an
        optional learning-rate schedule (:mod:`netcore.schedules`).

        A model ending in softmax (sigmoid) trained with cross-entropy (binary cross-entropy) on probabilities is
        trained through the fused, stable logits form automatically.
        """
        if not self.layers:
            raise ConfigurationError("the model has no layers: pass them to Sequential or add() them first")
        self._build_declared()
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        self.schedule = schedule
        self.metric_names = [metrics_mod.canonical_name(m) for m in (metrics or [])]
        last = self.layers[-1]
        final = getattr(last, "activation", None)
        self._fused = bool(final is not None and not self.loss.from_logits and self.loss.fuses_with == final.kind)
        for layer in self.layers:
            if hasattr(layer, "emit_logits"):
                layer.emit_logits = False
        if self._fused:
            last.emit_logits = True
            self._train_loss = self.loss.logits_form()
        else:
            self._train_loss = self.loss
        if self.built:
            self._claim()
            if self._layout != tuple(layer.trainable for layer in self.layers):
                self._carry(self._allocate(tuple(layer.trainable for layer in self.layers)))
            self.optimizer.bind(self.backend, self._trained_params)
        return self

    # ----------------------------------------------------------------- modes and devices
    def train(self) -> Sequential:
        """Training mode for :meth:`__call__`: dropout and noise active, batch norm on batch statistics."""
        self.training = True
        return self

    def eval(self) -> Sequential:
        """Evaluation mode for :meth:`__call__`: dropout off, batch norm on running statistics."""
        self.training = False
        return self

    @property
    def device(self) -> str:
        return self.backend.name

    def to(self, device) -> Sequential:
        """Move parameters, running statistics and optimizer state to another device."""
        target = get_backend(device)
        if target is self.backend:
            return self
        source = self.backend
        self.backend = target
        self.dtype = target.float_dtype(self.dtype_name)
        if self.built:
            self._params = target.asarray(source.to_numpy(self._params), self.dtype)
            self._grads = target.asarray(source.to_numpy(self._grads), self.dtype)
            self._state = target.asarray(source.to_numpy(self._state), self.dtype)
            self._bind()
        if self.optimizer is not None and self.optimizer.backend is not None:
            old_state = {k: source.to_numpy(v) for k, v in self.optimizer.state.items()}
            self.optimizer.bind(target, self._trained_params)
            for key, value in old_state.items():
                self.optimizer.state[key][...] = target.asarray(value, self.dtype)
        return self

    # ----------------------------------------------------------------- data
    def _prepare(self, X, y=None, class_weight=None, sample_weight=None, need_targets=True, stream=False):
        """Validate inputs (nothing changes if they are bad), then build the model on first sight of data. Data
        not in memory (a memmap, an h5py dataset) is read a block at a time where ``stream``, else in whole."""
        if not self.layers:
            raise ConfigurationError("the model has no layers: pass them to Sequential or add() them first")
        self._build_declared()
        X = validation.features(self, X)
        if streaming.is_streamed(X) and not stream:
            X = X.read(0, len(X))
        n_outputs = self.n_outputs if self.built else self._infer_shapes(tuple(X.shape[1:]))[-1]
        Y = weights = None
        if need_targets:
            if self.loss is None:
                raise ConfigurationError("call compile() before fit(), evaluate() or train_on_batch()")
            Y = validation.targets(self, self.loss, y, X.shape[0], n_outputs)
            weights = validation.sample_weights(self, Y, X.shape[0], n_outputs, class_weight, sample_weight)
        if not self.built:
            self.build(tuple(X.shape[1:]))
            if self.optimizer is not None:
                self.optimizer.bind(self.backend, self._trained_params)
        return X, Y, weights

    def _batch_buffer(self, key: str, like, rows: int):
        slot = (key, rows)
        buf = self._batch_buffers.get(slot)
        if buf is None:
            buf = self._batch_buffers[slot] = self.backend.empty((rows,) + tuple(like.shape[1:]), like.dtype)
        return buf

    # ----------------------------------------------------------------- the step
    def _forward(self, x, training: bool, logits: bool = False):
        """The layers in turn; a mask over time steps (from Masking) travels with the output, for the layers that
        read it (recurrent layers, average pooling over time) and, at the end, for the loss (:attr:`_output_mask`)."""
        last = len(self.layers) - 1
        mask = None
        for i, layer in enumerate(self.layers):
            self._current_layer = layer.name
            layer.mask = mask
            x = (
                layer.forward(x, training, logits)
                if i == last and hasattr(layer, "emit_logits")
                else (layer.forward(x, training))
            )
            mask = layer.output_mask(mask)
        self._output_mask = mask
        return x

    def _backward(self, grad) -> None:
        first = self._first_trained
        for i in range(len(self.layers) - 1, first - 1, -1):
            self._current_layer = self.layers[i].name
            grad = self.layers[i].backward(grad, need_dx=i > first)

    def _penalties(self):
        """Add every penalty's gradient to the gradient buffer and return the summed penalty (0.0 if none)."""
        total = 0.0
        for layer, spec in self._specs[: self._n_trained_specs]:
            if spec.regularizer is not None:
                total = total + spec.regularizer.penalty(self.backend, layer.params[spec.name])
                spec.regularizer.add_gradient(self.backend, layer.params[spec.name], layer.grads[spec.name])
        return total

    def _constrain(self) -> None:
        for layer, spec in self._specs[: self._n_trained_specs]:
            if spec.constraint is not None:  # per output unit: a kernel's last axis (a Dense column, a filter)
                weights = layer.params[spec.name]
                spec.constraint.apply(self.backend, weights.reshape(-1, weights.shape[-1]))

    def loss_and_gradients(self, xb, yb, weights=None):
        """Training-mode forward and backward on a device batch: the loss (with penalties), gradients written
        into the model's gradient buffer. No parameter changes."""
        out = self._forward(xb, True, logits=True)
        rows, targets, row_weights = self._loss_rows(out, yb, weights, self._output_mask)
        grad = self._batch_buffer("grad", rows, rows.shape[0])
        loss = self._train_loss(self.backend, rows, targets, grad, row_weights)
        self._backward(grad if out.ndim == 2 else grad.reshape(out.shape))
        if self._has_penalties:
            loss = loss + self._penalties()
        return loss

    def _loss_rows(self, out, Y, weights, mask=None):
        """The output, targets and weights as rows of the loss: one per sample, or one per step (pixel) when the
        output has more axes; per-sample weights repeated over the steps, masked steps weighted 0 (views and a
        reused buffer, no copies)."""
        if out.ndim == 2:
            return out, Y, weights
        rows = out.reshape(-1, out.shape[-1])
        targets = Y.reshape(-1) if Y.ndim == out.ndim - 1 else Y.reshape(-1, out.shape[-1])
        if weights is None and mask is None:
            return rows, targets, None
        spread = self._batch_buffer("row weights", rows[:, :1], rows.shape[0]).reshape(out.shape[0], -1)
        spread[...] = 1 if weights is None else weights.reshape(out.shape[0], -1)
        if mask is not None:
            spread *= mask.reshape(out.shape[0], -1)
        return rows, targets, spread.reshape(-1)

    def apply_gradients(self) -> None:
        """One optimizer step from the gradient buffer (then the constraints)."""
        if self.schedule is not None and self.schedule.per == "step":
            self.optimizer.lr = self.schedule.lr(self.optimizer.initial_lr, self.optimizer.step_count)
        self.optimizer.step(self._trained_params, self._trained_grads)
        if self._has_constraints:
            self._constrain()

    def train_step(self, xb, yb, weights=None):
        """One forward, backward and optimizer step on a batch already on the device; returns the batch loss as a
        device scalar (no synchronisation), which on a GPU this model's next step may overwrite: keep
        ``float(loss)``, not the scalar, to collect losses."""
        loss = self.loss_and_gradients(xb, yb, weights)
        self.apply_gradients()
        return loss

    def compile_step(self, X, y):
        """A training step on fixed device arrays ``(X, y)``, recorded once as a CUDA graph and replayed on every
        call (opt-in, for launch-bound GPU training: one graph launch instead of dozens of kernel launches).

        Recording happens after one ordinary warm-up step. The returned callable performs one step per call and
        returns the batch loss as a device scalar (valid until the next step, as with :meth:`train_step`). To train
        on other data, copy it into the same ``X``/``y`` arrays. Where a step cannot be recorded faithfully (another
        backend; a softmax inside the network; losses, penalties or constraints whose kernels allocate; NAdam's or
        Adagrad's step-dependent rates) or CUDA refuses the capture, the callable runs the step eagerly and the
        reason is logged. A learning-rate change after recording also falls back to eager steps, with the reason
        logged. Dropout masks and noise are drawn from seeds advanced on the device at every replay: fixed by the
        model's seed, but not the masks eager steps would draw.
        """
        if self.optimizer is None:
            raise ConfigurationError("call compile() before compile_step()")
        with self.backend.scope():
            self._claim()
            X, Y, _ = self._prepare(X, y)
            self._check_layout()
        return graphs.CompiledStep(self, X, Y)

    def first_nonfinite_gradient(self) -> str | None:
        """``layer.param`` of the first parameter (in forward order) whose gradient holds NaN or infinity."""
        for layer, spec in self._specs:
            if not self.backend.all_finite(layer.grads[spec.name]):
                return f"{layer.name}.{spec.name}"
        return None

    def train_on_batch(self, X, y, sample_weight=None) -> float:
        """One optimizer step on ``(X, y)`` as a single batch; returns the batch loss (before the step)."""
        if self.optimizer is None:
            raise ConfigurationError("call compile() before train_on_batch()")
        with self.backend.scope(), self._guarded():
            X, Y, weights = self._prepare(X, y, sample_weight=sample_weight)
            self._check_layout()
            return self.backend.to_float(self.train_step(X, Y, weights))

    # ----------------------------------------------------------------- state snapshots
    def snapshot(self) -> dict:
        """Host copies of everything training changes: parameters, running statistics, optimizer state and
        counters, the generator and the epoch count (what :meth:`restore` puts back)."""
        if not self.built:
            return {"built": False}
        backend = self.backend
        state = {
            "built": True,
            "params": backend.to_numpy(self._params).copy(),
            "state": backend.to_numpy(self._state).copy(),
            "rng": backend.rng_state(self.rng),
            "epochs_trained": self.epochs_trained,
        }
        if self.optimizer is not None and self.optimizer.backend is not None:
            state["optimizer"] = {k: backend.to_numpy(v).copy() for k, v in self.optimizer.state.items()}
            state["optimizer_scalars"] = self.optimizer.scalar_state()
        return state

    def restore(self, snapshot: dict) -> None:
        """Put back a :meth:`snapshot`, bit for bit."""
        if not snapshot["built"]:
            return
        backend = self.backend
        self._params[...] = backend.asarray(snapshot["params"])
        self._state[...] = backend.asarray(snapshot["state"])
        backend.set_rng_state(self.rng, snapshot["rng"])
        self.epochs_trained = snapshot["epochs_trained"]
        if "optimizer" in snapshot:
            for key, value in snapshot["optimizer"].items():
                self.optimizer.state[key][...] = backend.asarray(value)
            self.optimizer.load_scalar_state(snapshot["optimizer_scalars"])

    @contextlib.contextmanager
    def _guarded(self, mutates: bool = True):
        """Run a public call; if it raises, put the model back as it was before the call (for calls that change
        it) and turn a device out-of-memory error into a netcore error that says where and what to do."""
        self._claim()
        before = self.snapshot() if mutates else {"built": False}
        try:
            yield
        except BaseException as exc:
            if self.built and before["built"]:
                self.restore(before)
            if isinstance(exc, self.backend.out_of_memory_errors):
                raise OutOfMemoryError(self._out_of_memory_message(exc)) from exc
            raise

    def _out_of_memory_message(self, exc) -> str:
        used, total = self.backend.memory_info()
        rows = max((key[1] for key in self._batch_buffers), default=0)
        return (
            f"out of device memory in layer {self._current_layer} (batch of {rows} rows, {used / 2**20:.0f} MiB "
            f"of {total / 2**20:.0f} MiB in use): reduce batch_size or the layer widths ({exc})"
        )

    # ----------------------------------------------------------------- fit / evaluate / predict
    def fit(
        self,
        X,
        y,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle: bool = True,
        verbose: int = 1,
        validation_data=None,
        validation_split: float = 0.0,
        class_weight=None,
        sample_weight=None,
        callbacks=None,
        on_nonfinite: str = "raise",
        cuda_graph: bool = False,
        distributed: bool = False,
    ) -> History:
        """Train for ``epochs`` passes over ``(X, y)`` in mini-batches (``batch_size=None``: full batch).

        ``validation_split`` holds out the last fraction of the rows (before shuffling), or ``validation_data=(X, y)``
        is evaluated after every epoch (``val_*`` in the history). ``class_weight`` maps a class to a weight and
        ``sample_weight`` weights rows. ``callbacks`` are :mod:`netcore.callbacks` objects. ``verbose``: 1 a
        progress bar per epoch, 2 one line per epoch, 0 silent. Ctrl-C stops at the next step boundary and returns
        the history with ``interrupted=True``.

        Every batch's loss is checked: ``on_nonfinite="raise"`` raises :class:`DivergenceError` naming the first
        layer whose gradient went non-finite, ``"skip_batch"`` drops that step, ``"rollback"`` goes back to the end
        of the last good epoch and halves the learning rate (at most 3 times), ``"ignore"`` takes the step anyway
        (PyTorch's and scikit-learn's behaviour: the weights may turn non-finite). If fit raises, the model is left
        exactly as it was before the call.

        ``cuda_graph=True`` (cupy backend, launch-bound training) records each batch size's forward and backward
        pass and the optimizer step as CUDA graphs on first use and replays them for every later batch: the same
        arithmetic in two launches per step. Where the model cannot be recorded (see :meth:`compile_step`) or the
        backend has no graphs, training runs eagerly and the reason is logged.

        ``distributed=True`` trains data-parallel over the processes of an MPI job (``mpiexec -n N``): each
        computes its share of every batch and one Allreduce sums the gradients, so the steps are those of one
        process with the same ``batch_size`` and seed (see :mod:`netcore.distributed`).
        """
        if self.optimizer is None:
            raise ConfigurationError("call compile() before fit()")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise ConfigurationError(f"epochs must be a non-negative integer, got {epochs!r}")
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0
        ):
            raise ConfigurationError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if on_nonfinite not in training.NONFINITE_POLICIES:
            raise ConfigurationError(f"on_nonfinite must be one of {training.NONFINITE_POLICIES}, got {on_nonfinite!r}")
        if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
            raise ConfigurationError(f"validation_split must be in [0, 1), got {validation_split!r}")
        with self.backend.scope(), self._guarded():
            X, Y, weights = self._prepare(X, y, class_weight, sample_weight, stream=True)
            self._check_layout()
            n = X.shape[0]
            validation = None
            if validation_data is None and validation_split:
                cut = n - int(round(n * validation_split))
                if cut < 1 or cut == n:
                    raise ConfigurationError(f"validation_split={validation_split} leaves no rows on one side")
                validation = (X[cut:], Y[cut:])
                X, Y, n = X[:cut], Y[:cut], cut
                weights = None if weights is None else weights[:cut]
            elif validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise ConfigurationError("validation_data must be a pair (X_val, y_val)")
                validation = self._prepare(*validation_data, stream=True)[:2]
            batch = n if batch_size is None else min(batch_size, n)
            parallel = None
            if distributed:
                from netcore import distributed as dist

                if cuda_graph:
                    raise ConfigurationError("cuda_graph=True and distributed=True do not combine")
                ctx = dist.init()
                dist.synchronise(self, ctx, n, batch, epochs, shuffle)
                parallel = dist.DataParallelSteps(self, ctx)
                if not ctx.is_main:  # one rank reports and writes files
                    verbose = 0
                    callbacks = [cb for cb in callbacks or [] if not getattr(cb, "writes_files", False)]
            with parallel or contextlib.nullcontext():
                return training.run(
                    self,
                    (X, Y, weights, validation),
                    epochs,
                    batch,
                    shuffle,
                    list(callbacks or []),
                    verbose,
                    History(),
                    on_nonfinite,
                    bool(cuda_graph),
                    parallel,
                )

    def _restore_callback_state(self, callbacks) -> None:
        """Hand callbacks the state a loaded checkpoint carried for them (matched by class, in order)."""
        pending = getattr(self, "_pending_callback_state", None)
        if not pending:
            return
        for cb in callbacks:
            key = type(cb).__name__
            if pending.get(key):
                values, arrays = pending[key].pop(0)
                cb.set_state(values, arrays)
        self._pending_callback_state = None

    def _predict_native(self, X, batch_size: int = 1024, logits: bool = False):
        """Outputs for ``X`` in evaluation mode, ``(n, *output_shape)``; the output's mask over time steps, if any,
        is left in :attr:`_predicted_mask`."""
        out = self.backend.empty((X.shape[0], *self.output_shape), self.dtype)
        self._predicted_mask = None
        for start, rows in self._chunks(X, batch_size):
            out[start : start + rows.shape[0]] = self._forward(rows, False, logits)
            if self._output_mask is not None:
                if self._predicted_mask is None:
                    self._predicted_mask = self.backend.empty((X.shape[0], *self._output_mask.shape[1:]), "bool")
                self._predicted_mask[start : start + rows.shape[0]] = self._output_mask
        return out

    @staticmethod
    def _chunks(X, size: int):
        """``(start, rows)`` for consecutive chunks of ``size`` rows of ``X`` (streamed data: block by block)."""
        if not streaming.is_streamed(X):
            for start in range(0, X.shape[0], size):
                yield start, X[start : start + size]
            return
        for first, _, block in X.blocks(max(size, X.block_rows // size * size)):
            for start in range(0, block.shape[0], size):
                yield first + start, block[start : start + size]

    def _metrics(self, pred, Y, mask=None) -> dict:
        """Every compiled metric over the rows of the loss (masked steps left out)."""
        pred, Y, _ = self._loss_rows(pred, Y, None)
        if mask is not None:
            kept = mask.reshape(-1)
            pred, Y = pred[kept], Y[kept]
        return {name: metrics_mod.get(name)(self.backend, pred, Y) for name in self.metric_names}

    def _evaluate_native(self, X, Y, batch_size: int = 1024) -> dict:
        raw = self._predict_native(X, batch_size, logits=self._fused)
        mask = self._predicted_mask
        raw, targets, weights = self._loss_rows(raw, Y, None, mask)
        grad = self.backend.empty(raw.shape, raw.dtype)
        results = {"loss": self.backend.to_float(self._train_loss(self.backend, raw, targets, grad, weights))}
        pred = raw
        if self._fused:
            last = self.layers[-1].activation
            pred = last(self.backend, raw)
        results.update(self._metrics(pred, targets, mask))
        return results

    @staticmethod
    def _check_batch_size(batch_size) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ConfigurationError(f"batch_size must be a positive integer, got {batch_size!r}")

    def evaluate(self, X, y, batch_size: int = 1024, verbose: int = 0) -> Scores:
        """Loss (mean over ``X``) and every compiled metric, as a dict of floats that Keras code may also index by
        position (``score[0]`` the loss, ``score[1]`` the first metric). ``verbose=1`` prints them."""
        self._check_batch_size(batch_size)
        with self.backend.scope(), self._guarded(mutates=False):
            X, Y, _ = self._prepare(X, y, stream=True)
            scores = Scores(self._evaluate_native(X, Y, batch_size))
        if verbose:
            print(" - ".join(f"{name}: {value:.4f}" for name, value in scores.items()))
        return scores

    def predict(self, X, batch_size: int = 1024, verbose: int = 0):
        """The model's outputs (probabilities after softmax/sigmoid) for ``X``, as a NumPy array. ``verbose=1``
        prints how many rows took how long."""
        self._check_batch_size(batch_size)
        started = time.perf_counter()
        with self.backend.scope(), self._guarded(mutates=False):
            X, _, _ = self._prepare(X, need_targets=False, stream=True)
            out = self.backend.to_numpy(self._predict_native(X, batch_size)).copy()
        if verbose:
            print(f"predicted {len(out)} rows in {time.perf_counter() - started:.3f}s")
        return out

    def export(self, path, format: str = "onnx", opset: int = 17) -> str:
        """Write the model for other runtimes: ``format="onnx"`` (the extra ``onnx``) writes a standard ONNX model
        that computes :meth:`predict` (see :mod:`netcore.onnx_export`). A layer that cannot be exported raises
        ConfigurationError naming it, before anything is written."""
        if format != "onnx":
            raise ConfigurationError(f"export format must be 'onnx', got {format!r}")
        from netcore import onnx_export

        return onnx_export.export(self, path, opset)

    def predict_proba(self, X, batch_size: int = 1024, verbose: int = 0):
        """Class probabilities (the outputs of a model ending in softmax or sigmoid)."""
        return self.predict(X, batch_size, verbose)

    def predict_classes(self, X, batch_size: int = 1024, verbose: int = 0):
        """Predicted class indices: argmax of the outputs' last axis, or ``output >= 0.5`` for one sigmoid output
        (per step for sequence outputs)."""
        out = self.predict(X, batch_size, verbose)
        return (out[..., 0] >= 0.5).astype("int64") if out.shape[-1] == 1 else out.argmax(axis=-1)

    def __call__(self, X):
        """Forward pass in the current mode (:meth:`train` / :meth:`eval`), returning a native array."""
        with self.backend.scope(), self._guarded(mutates=self.training):
            X, _, _ = self._prepare(X, need_targets=False)
            return self._forward(X, self.training)

    # ----------------------------------------------------------------- weights
    def get_weights(self) -> list:
        """NumPy copies in layer order: Dense ``W (n_in, n_out)`` then ``b (n_out,)``; Conv2D ``W (kh, kw, in,
        filters)`` then ``b (filters,)``; BatchNorm ``gamma``, ``beta``, ``running_mean``, ``running_var``."""
        self._require_built()
        self._claim()
        out = []
        for layer in self.layers:
            for spec in layer.param_specs():
                out.append(self.backend.to_numpy(layer.params[spec.name]).copy())
            for spec in layer.state_specs():
                out.append(self.backend.to_numpy(layer.state[spec.name]).copy())
        return out

    def set_weights(self, weights) -> None:
        """Load arrays in :meth:`get_weights` order; every shape is checked before anything is written."""
        self._require_built()
        self._claim()
        targets = []
        for layer in self.layers:
            targets += [(layer, layer.params, s.name, s.shape) for s in layer.param_specs()]
            targets += [(layer, layer.state, s.name, s.shape) for s in layer.state_specs()]
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
            raise DTypeError(f"set_weights takes a list of arrays, got {type(weights).__name__}")
        weights = list(weights)
        if len(weights) != len(targets):
            raise ShapeError(f"set_weights needs {len(targets)} arrays, got {len(weights)}")
        converted = []
        for (layer, _, name, shape), w in zip(targets, weights, strict=True):
            where = f"{layer.name}.{name}"
            if getattr(getattr(w, "dtype", None), "kind", "f") in "OSUVMmc":
                raise DTypeError(f"{where} must hold real numbers, got dtype {w.dtype}")
            try:
                array = self.backend.asarray(w, self.dtype)
            except (TypeError, ValueError) as exc:
                raise DTypeError(f"{where} must be a numeric array: {exc}") from None
            if tuple(array.shape) != tuple(shape):
                raise ShapeError(f"{where} must have shape {tuple(shape)}, got {tuple(array.shape)}")
            if not self.backend.all_finite(array):
                raise ShapeError(f"{where} contains NaN or infinity")
            converted.append(array)
        for (_, store, name, _), array in zip(targets, converted, strict=True):
            store[name][...] = array

    def clone(self, dtype: str | None = None, device=None) -> Sequential:
        """A copy of this model's architecture and weights (optionally in another dtype or on another device),
        compiled with the same loss and a fresh optimizer of the same kind."""
        self._require_built()
        layers = [layers_mod.from_config(type(layer).__name__, layer.config()) for layer in self.layers]
        twin = Sequential(
            layers,
            input_shape=self.input_shape,
            device=device or self.backend,
            dtype=dtype or self.dtype_name,
            seed=self.seed,
        )
        twin.set_weights(self.get_weights())
        if self.loss is not None:
            optimizer = type(self.optimizer)(**self.optimizer.hyperparameters())
            twin.compile(optimizer, losses_mod.from_config(self.loss.name, self.loss.config()), self.metric_names)
        return twin

    def save(self, path) -> None:
        """Write the model, its training state and (during fit) its callbacks' state to one checkpoint file."""
        from netcore.saving import save_model

        save_model(self, path)

    def summary(self, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (trainable and not, so the column adds up to the
        total, as in Keras), with the device and dtype; printed and returned."""
        self._require_built()
        self._claim()
        rows = [("layer", "output shape", "params")]
        trainable = frozen = 0
        for layer, trained in zip(self.layers, self._layout, strict=True):
            learned = sum(_prod(spec.shape) for spec in layer.param_specs())
            tracked = sum(_prod(spec.shape) for spec in layer.state_specs())
            if trained:
                trainable, frozen = trainable + learned, frozen + tracked
            else:
                frozen += learned + tracked
            shape = "(" + ", ".join(map(str, (None, *layer.output_shape))) + ")"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{learned + tracked:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        line = "-" * (sum(widths) + 4)
        text = [line] + [f"{a:{widths[0]}}  {b:{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows[:1]] + [line]
        text += [f"{a:{widths[0]}}  {b:{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows[1:]] + [line]
        text += [
            f"total parameters: {trainable + frozen:,}",
            f"trainable parameters: {trainable:,}",
            f"non-trainable parameters: {frozen:,}",
            f"device: {self.device}, dtype: {self.dtype_name}, input shape: {self.input_shape}",
        ]
        result = "\n".join(text)
        if print_fn is not None:
            print_fn(result)
        return result

    def count_params(self) -> int:
        self._require_built()
        return int(self._params.shape[0])

    def _require_built(self) -> None:
        self._build_declared()
        if not self.built:
            raise NetcoreError("the model is not built yet: pass input_shape (or input_dim) or call fit() first")

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], device={self.device!r}, dtype={self.dtype_name!r})"
