"""Runs a model's layer calls on arrays: forwards in order, backwards in reverse, nothing else.

The graph decides the order; the layers only see arrays in and arrays out. Values live in numbered slots (the
model's inputs, then one per call). Backwards, a slot read by several calls (fan-out) gets the sum of their
gradients: the first contribution is taken as it is and the later ones are added into it, in place. That is safe
because a layer's backward may overwrite only the ``dy`` it is given, which the graph no longer needs, and merge
layers return gradients that do not share memory.

A layer called more than once in one model runs its later calls through twins (:meth:`Layer.twin`): copies bound to
its weights, with work buffers, cached values and weight gradients of their own; after the backward pass their
gradients are added to the layer's. Only calls that lead to a trainable weight run backwards, and each asks for
input gradients only where something below it trains.
"""

from __future__ import annotations

from netcore.layers.base import Layer
from netcore.models.block_chain import BlockChain


class Step:
    """A call as it runs: its runner (the layer, or a twin for a repeated call) and what it reads and writes."""

    __slots__ = ("call", "runner", "inputs", "output", "many", "logits", "need_dx", "sends")

    def __init__(self, call, runner):
        self.call, self.runner = call, runner
        self.inputs, self.output, self.many = call.inputs, call.output, call.many
        self.logits = False
        self.need_dx = False
        #: Backwards: ``(input position, slot, add)`` for each input gradient the graph needs.
        self.sends: list[tuple[int, int, bool]] = []


class Executor:
    """Forward and backward passes over ``calls`` (see :class:`netcore.models.graph.Call`)."""

    def __init__(self, calls: list, n_inputs: int, output_slots: list[int]):
        self.calls, self.n_inputs, self.output_slots = calls, n_inputs, list(output_slots)
        self.n_slots = n_inputs + len(calls)
        self.values: list = [None] * self.n_slots
        self.masks: list = [None] * self.n_slots
        self.gradients: list = [None] * self.n_slots
        self.current = None  # the layer that raised, for error messages
        self.logit_outputs: set[int] = set()
        self.steps: list[Step] = []
        self.backward_steps: list[Step] = []
        self.seeds: list[tuple[int, int, bool]] = []
        self.twins: list = []
        self.splits_batch = False

    # ----------------------------------------------------------------- preparing
    def make_runners(self, backend, dtype, trained: set[int]) -> None:
        """The runner of every call (after the layers were built for their first calls and bound to their
        buffers): the layer itself for its first call, a twin built for its own call and bound to the layer's
        weights for any later one. ``trained``: ids of the layers whose weights train."""
        seen: set[int] = set()
        self.backend = backend
        self.steps, self.twins = [], []
        for call in self.calls:
            layer = call.layer
            if id(layer) not in seen:
                seen.add(id(layer))
                self.steps.append(Step(call, layer))
                continue
            twin = layer.twin()
            twin.build(call.input_shapes if call.many else call.input_shapes[0])
            own = {spec.name: backend.zeros(spec.shape, dtype) for spec in layer.param_specs()}
            twin.bind(backend, layer.params, own, layer.state, owner=layer.owner)
            self.steps.append(Step(call, twin))
            if id(layer) in trained:
                self.twins.append((layer, twin))
        #: Whether a layer runs its batch in blocks on the backend's threads.
        self.splits_batch = any(getattr(step.runner, "splits_batch", False) for step in self.steps)
        self._plan_backward(trained)
        self.set_logits(self.logit_outputs)

    def _plan_backward(self, trained: set[int]) -> None:
        """Which calls run backwards, which input gradients each returns, and whether each is the first to reach
        its slot (taken as it is) or a later one (added)."""
        needs = [False] * self.n_slots  # whether a slot's value depends on a trainable weight
        for step in self.steps:
            layer = step.call.layer
            own = id(layer) in trained and layer.has_weights
            needs[step.output] = own or any(needs[i] for i in step.inputs)
        reached: set[int] = set()
        self.seeds = []  # (output, slot, add) for each output whose gradient reaches a trainable weight
        for output, slot in enumerate(self.output_slots):
            if needs[slot]:
                self.seeds.append((output, slot, slot in reached))
                reached.add(slot)
        self.backward_steps = []
        for step in reversed(self.steps):
            if not needs[step.output]:
                continue
            wanted = [needs[i] for i in step.inputs]
            step.need_dx = tuple(wanted) if step.many else wanted[0]
            step.sends = []
            for position, slot in enumerate(step.inputs):
                if wanted[position]:
                    step.sends.append((position, slot, slot in reached))
                    reached.add(slot)
            self.backward_steps.append(step)

    def producer(self, output: int) -> Step | None:
        """The step that computes output ``output``, if its value is used nowhere else (so it may be replaced by
        logits while training), else None."""
        slot = self.output_slots[output]
        if slot < self.n_inputs or self.output_slots.count(slot) > 1:
            return None
        if any(slot in step.inputs for step in self.steps):
            return None
        return next(step for step in self.steps if step.output == slot)

    def set_logits(self, outputs: set[int]) -> None:
        """Let the steps computing ``outputs`` emit logits while training (their softmax or sigmoid is fused into
        the loss); every other runner emits its activation."""
        self.logit_outputs = set(outputs)
        for step in self.steps:
            step.logits = False
            if hasattr(step.runner, "emit_logits"):
                step.runner.emit_logits = False
        for output in outputs:
            step = self.producer(output)
            step.logits = step.runner.emit_logits = True
        self._compile_plans()

    def _compile_plans(self) -> None:
        """The steps as flat tuples, read once per step by the loops below (attribute lookups cost in them); runs of
        layers that work in blocks of images become one :class:`BlockChain` each way."""
        self.forward_plan = [
            (
                unit.runner,
                unit.inputs if unit.many else None,
                unit.inputs[0],
                unit.output,
                unit.logits,
                type(unit.runner).output_mask is Layer.output_mask,  # gives no mask to an unmasked input
            )
            for unit in self._chained(self.steps, self._forward_link, backwards=False)
        ]
        self.backward_plan = [
            (unit.runner, unit.output, unit.need_dx, unit.many, tuple(unit.sends))
            for unit in self._chained(self.backward_steps, self._backward_link, backwards=True)
        ]

    def _chained(self, steps: list[Step], linked, backwards: bool) -> list:
        """``steps`` with each run of two or more that ``linked(previous, step)`` joins made one BlockChain."""
        units: list = []
        run: list[Step] = []
        for step in [*steps, None]:
            if step is not None and run and linked(run[-1], step):
                run.append(step)
                continue
            if len(run) > 1:
                units.append(BlockChain(self, run, backwards))
            else:
                units.extend(run)
            run = [step] if step is not None and self._in_blocks(step) else []
            if step is not None and not run:
                units.append(step)
        return units

    @staticmethod
    def _in_blocks(step: Step) -> bool:
        return getattr(step.runner, "in_blocks", False) and not step.many and not step.logits

    def _forward_link(self, previous: Step, step: Step) -> bool:
        """Forwards, ``step`` joins ``previous``'s chain when it reads only ``previous``'s output."""
        return self._in_blocks(step) and step.inputs[0] == previous.output

    def _backward_link(self, previous: Step, step: Step) -> bool:
        """Backwards (``previous`` runs first), ``step`` joins when ``previous`` is the only reader of ``step``'s
        output, so that output's gradient is ``previous``'s input gradient alone, complete within a block."""
        slot = step.output
        return (
            self._in_blocks(step)
            and previous.need_dx is True
            and previous.sends == [(0, slot, False)]
            and self.readers(slot) == 1
        )

    def readers(self, slot: int) -> int:
        """How many calls and model outputs read ``slot``'s value."""
        return sum(slot in other.inputs for other in self.steps) + self.output_slots.count(slot)

    # ----------------------------------------------------------------- running
    def forward(self, inputs: list, training: bool, logits: bool = False) -> list:
        """The outputs for the batch ``inputs`` (one array per model input); the outputs' masks over time steps,
        if any, are left in :attr:`output_masks`. The layer running when an error is raised is :attr:`current`."""
        values, masks = self.values, self.masks
        for k, x in enumerate(inputs):
            values[k] = x
            masks[k] = None
        runner = None
        try:
            for runner, many, first, output, emits_logits, keeps_masks in self.forward_plan:
                if many is None:
                    mask = runner.mask = masks[first]
                    x = values[first]
                    values[output] = (
                        runner.forward(x, training, logits) if emits_logits else runner.forward(x, training)
                    )
                else:
                    mask = runner.mask = [masks[i] for i in many]
                    values[output] = runner.forward([values[i] for i in many], training)
                masks[output] = None if mask is None and keeps_masks else runner.output_mask(mask)
        except BaseException:
            self.current = runner
            raise
        return [values[slot] for slot in self.output_slots]

    @property
    def output_masks(self) -> list:
        return [self.masks[slot] for slot in self.output_slots]

    def backward(self, output_gradients: list) -> None:
        """Backpropagate the gradients of the outputs (one array per output, as the outputs' batch shapes; each
        may be overwritten) into every trainable layer's gradient buffer."""
        gradients = self.gradients
        for output, slot, add in self.seeds:
            if add:
                gradients[slot] += output_gradients[output]
            else:
                gradients[slot] = output_gradients[output]
        runner = None
        try:
            for runner, output, need_dx, many, sends in self.backward_plan:
                dx = runner.backward(gradients[output], need_dx)
                for position, slot, add in sends:
                    grad = dx[position] if many else dx
                    if add:
                        gradients[slot] += grad
                    else:
                        gradients[slot] = grad
        except BaseException:
            self.current = runner
            raise
        for layer, twin in self.twins:
            for name, grad in twin.grads.items():
                layer.grads[name] += grad
