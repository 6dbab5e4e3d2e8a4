"""Training steps recorded once and replayed as a whole (CUDA graphs on the cupy backend): one launch per replay
instead of dozens of kernel launches, which is what launch-bound GPU training (small layers, small batches) waits on.

A backend records with ``backend.capture(step)``: it runs ``step`` once for real (the warm-up), then records it
without running it. Everything a replay must vary lives in device memory (Adam's step number, the seeds of dropout
masks and noise); host-side values (learning rates, flags) are frozen into the recording, so a change to them means
recording again.
"""

from __future__ import annotations

import logging

log = logging.getLogger("netcore")


def capture_blocker(model) -> str | None:
    """Why a training step of ``model`` cannot be recorded as a graph that replays correctly, or None.

    A recording must not allocate (a temporary's address would be frozen into the graph while the memory pool hands
    it to someone else) nor draw from the host's generator (the draw would be frozen too: a backend that records
    draws dropout masks and noise from seeds it advances on the device).
    """
    from netcore import layers

    recordable = (
        layers.Dense,
        layers.BatchNorm,
        layers.Activation,
        layers.Dropout,
        layers.GaussianNoise,
        layers.Conv2D,
        layers.MaxPooling2D,
        layers.AveragePooling2D,
        layers.GlobalAveragePooling2D,
        layers.GlobalMaxPooling2D,
        layers.Flatten,
        layers.Reshape,
        layers.SimpleRNN,
        layers.LSTM,
        layers.GRU,
        layers.Bidirectional,
        layers.GlobalAveragePooling1D,
        layers.Add,
        layers.Subtract,
        layers.Multiply,
        layers.Average,
        layers.Maximum,
        layers.Minimum,
        layers.Concatenate,
    )  # SpatialDropout2D is a Dropout; Masking's mask is found with temporaries
    for step in model.executor.steps:
        layer = step.runner
        if not isinstance(layer, recordable) or isinstance(layer, layers.DepthwiseConv2D):
            names = ", ".join(cls.__name__ for cls in recordable)
            return f"layer {layer.name} ({type(layer).__name__}) is not recordable (these are: {names})"
        act = getattr(layer, "activation", None)
        if act is not None and not act.elementwise and not step.logits:
            return f"layer {layer.name}'s {act.kind} activation is not recordable (element-wise ones are)"
        shapes = step.call.input_shapes
        elementwise = (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum)
        if isinstance(layer, elementwise) and any(shape != step.call.output_shape for shape in shapes):
            return f"layer {layer.name} broadcasts, and its gradient's sum allocates"
    for _, spec in model.buffers.specs:
        if spec.regularizer is not None or spec.constraint is not None:
            return "penalties and constraints allocate temporaries"
    if len(model.heads) > 1:
        return "several outputs add their losses into a new device scalar"
    head = model.heads[0]
    if not (head.fused and head.train_loss.kernel == "softmax_cross_entropy"):
        return "only the fused softmax cross-entropy loss is allocation-free on the GPU"
    optimizer = model.optimizer
    if optimizer.clips:
        return "gradient clipping reads the gradient's norm on the host"
    name = type(optimizer).__name__
    if name == "NAdam" or (name == "Adagrad" and optimizer.lr_decay):
        return f"{name}'s step-dependent rates would be frozen into the graph"
    if model.schedule is not None and model.schedule.per == "step":
        return "a per-step learning-rate schedule changes the rate every step"
    return None


class CompiledStep:
    """What :meth:`netcore.models.Model.compile_step` returns: call it for one training step."""

    def __init__(self, model, X, Y):
        self.model, self.X, self.Y = model, X, Y
        self.replay = None
        self.reason = capture_blocker(model) or model.backend.capture_unsupported()
        if self.reason is None:
            self._record()
        if self.replay is None:
            log.info("compile_step runs eagerly: %s", self.reason)

    def _record(self) -> None:
        model, optimizer = self.model, self.model.optimizer
        steps = optimizer.step_count
        holder = {}

        def step():
            holder["loss"] = model.train_step(self.X, self.Y)

        self.replay, self.reason = model.backend.capture(step)
        optimizer.step_count = steps + 1  # the warm-up step ran; the recorded one only ran its host side
        self.loss = holder["loss"]
        self.lr = optimizer.lr

    def __call__(self):
        model = self.model
        if self.replay is not None and model.optimizer.lr != self.lr:
            self.replay, self.reason = None, "the learning rate changed after recording"
            log.info("compile_step runs eagerly from now on: %s", self.reason)
        if self.replay is None:
            with model.backend.scope():
                return model.train_step(self.X, self.Y)
        with model.backend.scope():
            self.replay()
        model.optimizer.step_count += 1
        return self.loss

    @property
    def recorded(self) -> bool:
        """Whether calls replay a recorded graph (False: eager steps, see :attr:`reason`)."""
        return self.replay is not None


class GraphedSteps:
    """``fit(cuda_graph=True)``: each batch's forward and backward, and the optimizer step, as two recorded graphs.

    Two graphs rather than one, so the loss can be checked between them exactly as in eager training (a skipped
    batch must not update the weights). The gradient graph is recorded on the first batch of each size (the last
    batch of an epoch is usually smaller) with its sample weights or without; the batch is gathered into the same
    buffers every step, so replays see new data. The update graph is recorded again whenever the learning rate or
    the step counter changed behind its back (schedules, rollbacks). Where the model or backend cannot be
    recorded, every step runs eagerly and the reason is logged once, as a warning.
    """

    def __init__(self, model):
        self.model = model
        self.reason = capture_blocker(model) or model.backend.capture_unsupported()
        self.gradient_graphs: dict = {}
        self.update_graph = None
        self.update_key = None  # (learning rate, step count) the update graph is valid for
        self.update_eager = False  # set when the update could not be recorded
        if self.reason is not None:  # asked for explicitly, so a fallback is worth a warning
            log.warning("fit(cuda_graph=True) runs eagerly: %s", self.reason)

    def loss_and_gradients(self, xb, yb, wb):
        """What :meth:`netcore.models.Model.loss_and_gradients` does, replayed where recorded."""
        model = self.model
        if self.reason is not None:
            return model.loss_and_gradients(xb, yb, wb)
        key = ((xb[0] if isinstance(xb, list) else xb).shape[0], wb is not None)
        recorded = self.gradient_graphs.get(key)
        if recorded is None:
            holder = {}
            replay, why = model.backend.capture(lambda: holder.update(loss=model.loss_and_gradients(xb, yb, wb)))
            self._note(why, f"the forward and backward pass for batches of {key[0]} rows")
            recorded = self.gradient_graphs[key] = (replay, holder["loss"])
            return recorded[1]  # the warm-up computed this batch's loss and gradients
        replay, loss = recorded
        if replay is None:
            return model.loss_and_gradients(xb, yb, wb)
        replay()
        return loss

    def apply_gradients(self) -> None:
        """What :meth:`netcore.models.Model.apply_gradients` does, replayed where recorded."""
        model, optimizer = self.model, self.model.optimizer
        if self.reason is not None or self.update_eager:
            model.apply_gradients()
        elif self.update_key != (optimizer.lr, optimizer.step_count):
            steps = optimizer.step_count
            self.update_graph, why = model.backend.capture(model.apply_gradients)
            optimizer.step_count = steps + 1  # the warm-up step ran; the recorded one only ran its host side
            self.update_eager = why is not None
            self._note(why, "the optimizer step")
        else:
            self.update_graph()
            optimizer.step_count += 1
        self.update_key = (optimizer.lr, optimizer.step_count)

    @staticmethod
    def _note(why: str | None, what: str) -> None:
        if why is None:
            log.debug("fit(cuda_graph=True) recorded %s", what)
        else:
            log.warning("fit(cuda_graph=True) runs %s eagerly: %s", what, why)
