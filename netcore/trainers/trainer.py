"""How a model is trained, kept apart from what it is (Keras 3's ``trainers/trainer.py``): ``compile``, ``fit``,
``evaluate``, ``predict``, ``train_on_batch`` and the step they share. Mixed into :class:`netcore.models.Model`,
whose graph (inputs, outputs, the executor) and flat buffers it uses; the epoch loop itself is
:mod:`netcore.trainers.loop`."""

from __future__ import annotations

import contextlib

from netcore import optimizers as optimizers_mod
from netcore.errors import ConfigurationError
from netcore.trainers import data, loop
from netcore.trainers.cuda_graphs import CompiledStep
from netcore.trainers.guard import Guard
from netcore.trainers.heads import compile_heads
from netcore.trainers.history import History
from netcore.trainers.scoring import Scoring


class Trainer(Scoring):
    """compile / fit / evaluate / predict for a model (see :class:`netcore.models.Model`)."""

    def _init_training(self) -> None:
        self.optimizer = None
        #: One compiled head per output (its loss, loss weight and metrics), after compile().
        self.heads: list = []
        #: Each output's weighted loss on the last batch (device scalars; kept for models with several outputs).
        self.output_losses: list = []
        self._output_gradients: list = []
        self._several_outputs = False
        self.schedule = None
        self.epochs_trained = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        #: The callbacks of the fit in progress (their state is saved with checkpoints).
        self.active_callbacks = None
        self._pending_callback_state = None
        self._batch_buffers: dict = {}

    # ----------------------------------------------------------------- compiled settings
    @property
    def loss(self):
        """The compiled loss (a list, one per output, for several outputs); None before compile()."""
        if not self.heads:
            return None
        return self.heads[0].loss if len(self.heads) == 1 else [head.loss for head in self.heads]

    @property
    def metric_names(self) -> list[str]:
        """The compiled metrics as history and evaluate name them (``accuracy``; ``cls_accuracy`` for an output
        called ``cls`` of a model with several)."""
        return [head.prefix + name for head in self.heads for name in head.metric_names]

    @property
    def fused_outputs(self) -> list[bool]:
        """For each output, whether its softmax or sigmoid trains fused into the loss (the stable logits form)."""
        return [head.fused for head in self.heads]

    def compile(
        self, optimizer="adam", loss="cross_entropy", metrics=None, schedule=None, loss_weights=None
    ) -> Trainer:
        """Choose the optimizer and loss (objects or names), the metrics reported by fit and evaluate, and an
        optional learning-rate schedule (:mod:`netcore.schedules`).

        For several outputs, ``loss``, ``loss_weights`` (the weight of each loss in the total, Keras's) and
        ``metrics`` may be given once for all, as a list in output order, or as a dict keyed by output name.
        An output ending in softmax (sigmoid) trained with cross-entropy (binary cross-entropy) on probabilities is
        trained through the fused, stable logits form automatically.
        """
        self._require_layers()
        self._build_declared()
        names = self.output_names if self.built else ["output"]
        heads = compile_heads(names, loss, loss_weights, metrics)
        self.optimizer = optimizers_mod.get(optimizer)
        self.heads, self.schedule = heads, schedule
        self.output_losses = [0.0] * len(heads)
        self._output_gradients = [None] * len(heads)
        self._several_outputs = len(heads) > 1
        if self.built:
            self._claim()
            layout = tuple(layer.trainable for layer in self.buffers.layers)
            if self.buffers.layout != layout:
                self._relayout(layout)
            self._recompile()
        return self

    def _recompile(self) -> None:
        """After the buffers or the graph changed: fuse the heads again and give the optimizer the buffers."""
        self._fuse_heads()
        self.optimizer.bind(self.backend, self.buffers.trained_params)

    def _fuse_heads(self) -> None:
        """Train each output whose last layer's softmax or sigmoid matches its loss on logits (fused, stable)."""
        fused = set()
        for head in self.heads:
            head.train_loss, head.fused, head.activation = head.loss, False, None
            step = self._executor.producer(head.index)
            runner = step.runner if step is not None else None
            final = getattr(runner, "activation", None) if hasattr(runner, "emit_logits") else None
            if final is not None and not head.loss.from_logits and head.loss.fuses_with == final.kind:
                head.fuse(final)
                fused.add(head.index)
        self._executor.set_logits(fused)

    def _compile_like(self, twin) -> None:
        """Compile ``twin`` (a clone) as this model is compiled, with a fresh optimizer of the same kind."""
        if not self.heads:
            return
        from netcore import losses as losses_mod

        twin.compile(
            type(self.optimizer)(**self.optimizer.hyperparameters()),
            [losses_mod.from_config(head.loss.name, head.loss.config()) for head in self.heads],
            [head.metric_names for head in self.heads],
            loss_weights=[head.weight for head in self.heads],
        )

    def _after_binding(self) -> None:
        super()._after_binding()
        if self.heads:
            self._fuse_heads()

    def normalizes_batches(self) -> bool:
        """Whether a training step normalises with batch statistics (a trainable BatchNorm)."""
        from netcore.layers import BatchNorm

        return any(isinstance(layer, BatchNorm) and layer.trainable for layer in self.buffers.layers)

    def _check_layout(self) -> None:
        """Training needs the trainable flags the buffers were laid out for (a change takes effect at compile)."""
        for layer, flag in zip(self.buffers.layers, self.buffers.layout, strict=True):
            if layer.trainable != flag:
                state = "frozen (trainable=False)" if flag else "unfrozen (trainable=True)"
                raise ConfigurationError(
                    f"layer {layer.name} was {state} after compile(); call compile() again for the change to take "
                    "effect"
                )

    # ----------------------------------------------------------------- data
    def _require_layers(self) -> None:
        if not self.built and not self.layers:
            raise ConfigurationError("the model has no layers: pass them to Sequential or add() them first")

    def _build_declared(self) -> None:
        """Build from a declared input shape (only a Sequential model waits for one)."""

    def _input_specs(self) -> tuple[list[str], list | None, list[str]]:
        """The inputs' names, sample shapes (None before building) and how errors name who takes each."""
        if not self.built:
            return ["input"], None, [f"the first layer ({self.layers[0].name})"]
        return self._input_specs_built

    def _describe_inputs(self) -> tuple[list[str], list, list[str]]:
        """What :meth:`_input_specs` returns for a built model (worked out once per graph: predictions of a
        single row are cheap only if every call does little)."""
        names = self.input_names
        if len(names) > 1:
            return names, self.input_shapes, [f"input {name!r}" for name in names]
        first = next(node for node in self.graph.nodes if any(t is self.graph.inputs[0] for t in node.inputs))
        return names, self.input_shapes, [f"the first layer ({first.operation.name})"]

    def _prepare(self, X, y=None, class_weight=None, sample_weight=None, need_targets=True, stream=False):
        """Checked device arrays: ``(inputs, targets, weights)`` as lists (one per input and per output). Nothing
        changes if they are bad; a Sequential model is built on first sight of data. Data not in memory (a memmap,
        an h5py dataset) is read a block at a time where ``stream``, else in whole."""
        if not self.built:
            self._require_layers()
            self._build_declared()
        names, shapes, receivers = self._input_specs()
        xs = data.inputs(self, X, names, shapes, receivers, stream)
        if not self.built:
            out_names, out_shapes = ["output"], [self.infer_output_shape(tuple(xs[0].shape[1:]))]
        elif need_targets:
            out_names, out_shapes = self.output_names, self.output_shapes
        Ys = weights = None
        if need_targets:
            if not self.heads:
                raise ConfigurationError("call compile() before fit(), evaluate() or train_on_batch()")
            Ys = data.targets(self, self.heads, y, xs[0].shape[0], out_names, out_shapes)
            weights = data.weights(self, Ys, xs[0].shape[0], out_shapes, class_weight, sample_weight)
        if not self.built:
            self.build(tuple(xs[0].shape[1:]))
            if self.optimizer is not None:
                self._recompile()
        return xs, Ys, weights

    def prepare(self, X, y=None, sample_weight=None):
        """``(X, y, weights)`` as checked device arrays in the forms :meth:`train_step` takes (a list only where the
        model has several inputs or outputs); for hand-written loops and benchmarks."""
        with self.backend.scope():
            xs, Ys, weights = self._prepare(X, y, sample_weight=sample_weight, need_targets=y is not None)
        single = len(xs) == 1
        targets = None if Ys is None else (Ys[0] if len(Ys) == 1 else Ys)
        return (xs[0] if single else xs), targets, weights

    def batch_buffer(self, key: str, like, rows: int):
        """A device buffer of ``rows`` rows shaped like ``like``'s rows, made once per key and row count."""
        slot = (key, rows)
        buf = self._batch_buffers.get(slot)
        if buf is None:
            buf = self._batch_buffers[slot] = self.backend.empty((rows,) + tuple(like.shape[1:]), like.dtype)
        return buf

    # ----------------------------------------------------------------- the step
    def loss_and_gradients(self, xb, yb, weights=None):
        """Training-mode forward and backward on a device batch (arrays, or lists for several inputs/outputs):
        the loss (the weighted sum over outputs, with penalties), gradients written into the gradient buffer. No
        parameter changes."""
        xs = xb if isinstance(xb, list) else [xb]
        ys = yb if isinstance(yb, list) else [yb]
        executor, backend = self._executor, self.backend
        outputs = executor.forward(xs, True, logits=True)
        masks = executor.masks
        gradients = self._output_gradients
        total = None
        for head in self.heads:
            k = head.index
            out = outputs[k]
            rows, targets, row_weights = self._loss_rows(out, ys[k], weights, masks[executor.output_slots[k]], k)
            grad = self.batch_buffer(head.grad_key, rows, rows.shape[0])
            loss = head.train_loss(backend, rows, targets, grad, row_weights)
            if head.weight != 1.0:
                grad *= head.weight
                loss = loss * head.weight
            if self._several_outputs:
                self.output_losses[k] = loss
            total = loss if total is None else total + loss
            gradients[k] = grad if out.ndim == 2 else grad.reshape(out.shape)
        executor.backward(gradients)
        if self.buffers.has_penalties:
            total = total + self.buffers.add_penalties()
        return total

    def apply_gradients(self) -> None:
        """One optimizer step from the gradient buffer (then the constraints)."""
        if self.schedule is not None and self.schedule.per == "step":
            self.optimizer.lr = self.schedule.lr(self.optimizer.initial_lr, self.optimizer.step_count)
        self.optimizer.step(self.buffers.trained_params, self.buffers.trained_grads)
        if self.buffers.has_constraints:
            self.buffers.constrain()

    def train_step(self, xb, yb, weights=None):
        """One forward, backward and optimizer step on a batch already on the device; returns the batch loss as a
        device scalar (no synchronisation), which on a GPU this model's next step may overwrite: keep
        ``float(loss)``, not the scalar, to collect losses. Where layers run blocks of the batch on the backend's
        threads (convolutions on the CPU), the step gives them the cores as ``fit`` does: BLAS stays on the calling
        thread instead of spinning beside them (a LeNet step took 8.0 ms that way against 5.8)."""
        if not self._splits_batch():
            return self._step(xb, yb, weights)
        with self.backend.owning_cores():
            return self._step(xb, yb, weights)

    def _step(self, xb, yb, weights):
        loss = self.loss_and_gradients(xb, yb, weights)
        self.apply_gradients()
        return loss

    def compile_step(self, X, y):
        """A training step on fixed device arrays ``(X, y)``, recorded once as a CUDA graph and replayed on every
        call (opt-in, for launch-bound GPU training: one graph launch instead of dozens of kernel launches).

        Recording happens after one ordinary warm-up step. The returned callable performs one step per call and
        returns the batch loss as a device scalar (valid until the next step, as with :meth:`train_step`). To train
        on other data, copy it into the same ``X``/``y`` arrays. Where a step cannot be recorded faithfully (another
        backend; a softmax inside the network; several outputs; losses, penalties or constraints whose kernels
        allocate; NAdam's or Adagrad's step-dependent rates) or CUDA refuses the capture, the callable runs the step
        eagerly and the reason is logged. A learning-rate change after recording also falls back to eager steps,
        with the reason logged. Dropout masks and noise are drawn from seeds advanced on the device at every replay:
        fixed by the model's seed, but not the masks eager steps would draw.
        """
        if self.optimizer is None:
            raise ConfigurationError("call compile() before compile_step()")
        with self.backend.scope():
            self._claim()
            xs, Ys, _ = self._prepare(X, y)
            self._check_layout()
        return CompiledStep(self, xs, Ys)

    def first_nonfinite_gradient(self) -> str | None:
        """``layer.param`` of the first parameter (in forward order) whose gradient holds NaN or infinity."""
        names = self.leaf_names()
        for layer, spec in self.buffers.specs:
            if not self.backend.all_finite(layer.grads[spec.name]):
                return f"{names[id(layer)]}.{spec.name}"
        return None

    def train_on_batch(self, X, y, sample_weight=None) -> float:
        """One optimizer step on ``(X, y)`` as a single batch; returns the batch loss (before the step)."""
        if self.optimizer is None:
            raise ConfigurationError("call compile() before train_on_batch()")
        with self._guarded():
            xs, Ys, weights = self._prepare(X, y, sample_weight=sample_weight)
            self._check_layout()
            return self.backend.to_float(self._step(xs, Ys, weights))  # the guard owns the cores already

    # ----------------------------------------------------------------- state snapshots
    def snapshot(self) -> dict:
        """Host copies of everything training changes: parameters, running statistics, optimizer state and
        counters, the generator and the epoch count (what :meth:`restore` puts back)."""
        if not self.built:
            return {"built": False}
        backend = self.backend
        state = {
            "built": True,
            "params": backend.to_numpy(self.buffers.params).copy(),
            "state": backend.to_numpy(self.buffers.state).copy(),
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
        self.buffers.params[...] = backend.asarray(snapshot["params"])
        self.buffers.state[...] = backend.asarray(snapshot["state"])
        backend.set_rng_state(self.rng, snapshot["rng"])
        self.epochs_trained = snapshot["epochs_trained"]
        if "optimizer" in snapshot:
            for key, value in snapshot["optimizer"].items():
                self.optimizer.state[key][...] = backend.asarray(value)
            self.optimizer.load_scalar_state(snapshot["optimizer_scalars"])

    def _guarded(self, mutates: bool = True) -> Guard:
        """Run a public call; if it raises, put the model back as it was before the call (for calls that change
        it) and turn a device out-of-memory error into a netcore error that says where and what to do."""
        return Guard(self, mutates)

    def _splits_batch(self) -> bool:
        """Whether a layer runs its batch in blocks on the backend's threads (the calls then own the cores)."""
        if self.built:
            return self._executor.splits_batch
        return any(getattr(layer, "splits_batch", False) for layer in self.layers)

    def _out_of_memory_message(self, exc) -> str:
        used, total = self.backend.memory_info()
        rows = max((key[1] for key in self._batch_buffers), default=0)
        current = getattr(self._executor.current, "name", None) if self.built else None
        return (
            f"out of device memory in layer {current} (batch of {rows} rows, {used / 2**20:.0f} MiB "
            f"of {total / 2**20:.0f} MiB in use): reduce batch_size or the layer widths ({exc})"
        )

    def restore_callback_state(self, callbacks) -> None:
        """Hand callbacks the state a loaded checkpoint carried for them (matched by class, in order)."""
        pending = self._pending_callback_state
        if not pending:
            return
        for cb in callbacks:
            key = type(cb).__name__
            if pending.get(key):
                values, arrays = pending[key].pop(0)
                cb.set_state(values, arrays)
        self._pending_callback_state = None

    # ----------------------------------------------------------------- fit
    def fit(
        self,
        X,
        y=None,
        epochs: int = 1,
        batch_size: int | None = data.DEFAULT_BATCH_SIZE,
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
        """Train for ``epochs`` passes over ``(X, y)`` in mini-batches (``batch_size=None``: full batch; 32 by
        default). For several inputs or outputs, ``X`` and ``y`` are lists in the model's order or dicts keyed by
        name. ``X`` may be a data set that carries its targets (:func:`netcore.utils.image_dataset_from_directory`):
        then ``y`` is left out and the data set's ``batch_size`` is the default.

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
        data.check_positive_int("batch_size", batch_size, allow_none=True)
        if on_nonfinite not in loop.NONFINITE_POLICIES:
            raise ConfigurationError(f"on_nonfinite must be one of {loop.NONFINITE_POLICIES}, got {on_nonfinite!r}")
        if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
            raise ConfigurationError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if data.is_data_set(X) and isinstance(batch_size, data.DefaultBatchSize):
            batch_size = X.batch_size
        X, y = data.unpack(X, y)
        if data.is_data_set(validation_data):
            validation_data = data.unpack(validation_data, None)
        with self._guarded():
            xs, Ys, weights = self._prepare(X, y, class_weight, sample_weight, stream=True)
            self._check_layout()
            n = xs[0].shape[0]
            validation = None
            if validation_data is None and validation_split:
                cut = n - int(round(n * validation_split))
                if cut < 1 or cut == n:
                    raise ConfigurationError(f"validation_split={validation_split} leaves no rows on one side")
                validation = ([x[cut:] for x in xs], [Y[cut:] for Y in Ys])
                xs, Ys, n = [x[:cut] for x in xs], [Y[:cut] for Y in Ys], cut
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
                return loop.run(
                    self,
                    (xs, Ys, weights, validation),
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
