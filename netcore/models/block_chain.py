"""Layers that run in blocks of images, in a row, run as one: a block goes through all of them on one thread.

A convolution or a pooling layer on the CPU cuts its batch into blocks and hands them to the backend's block threads
(:class:`~netcore.layers.base.InBlocks`). Waking a thread costs tens of microseconds, and between two such layers a
block's values leave the core that made them. Where each layer of a run reads only the output of the one before
(LeNet's convolution, pooling, convolution, pooling), the executor runs the whole run as a :class:`BlockChain`: one
hand-over forwards and one backwards, every block through every member on one thread. The blocks are the ones the
most demanding member asks for; a member's results do not depend on them.

Where a convolution with ReLU (or no activation) is read by a max-pooling alone, and the backend fuses them
(``fuses_bias_relu_into_max_pool``), the convolution leaves its bias and ReLU to the pooling, which applies them as
it reads each value: one pass over the convolution's output instead of two, the same results. The convolution's
slot then holds its product, which nothing else reads.
"""

from __future__ import annotations

from netcore.layers.base import batch_blocks


class BlockChain:
    """What the executor runs in place of ``steps`` (consecutive steps of :class:`~netcore.layers.base.InBlocks`
    layers, each reading the previous one's output; in backward order for a backward chain). Intermediate values and
    gradients go into the executor's slots as the steps' own would."""

    many = logits = False

    def __init__(self, executor, steps: list, backwards: bool):
        self.executor = executor
        self.steps = steps
        # What the executor's plans read of a step: forwards the chain reads the first member's input and writes
        # the last one's output; backwards it takes the first member's output gradient and sends what the last one
        # sends.
        self.runner = self
        first, last = steps[0], steps[-1]
        self.inputs, self.output = (last.inputs, first.output) if backwards else (first.inputs, last.output)
        self.need_dx, self.sends = last.need_dx, last.sends
        #: Forwards, the members that leave their bias and activation to the next one.
        self.handing_over = set() if backwards else {i for i in range(len(steps) - 1) if self._hands_over(i)}
        self.mask = None
        #: The member whose block raised (for error messages that name a layer).
        self.failed = None
        self._output_mask = None

    def _hands_over(self, i: int) -> bool:
        """Whether member ``i`` (a convolution) leaves its bias and ReLU to member ``i + 1`` (a max-pooling)."""
        step, following = self.steps[i], self.steps[i + 1]
        return (
            self.executor.backend.fuses_bias_relu_into_max_pool
            and getattr(following.runner, "takes_bias_relu", False)
            and getattr(step.runner, "bias_relu", lambda: None)() is not None
            and self.executor.readers(step.output) == 1
        )

    @property
    def name(self) -> str:
        return (self.failed or self.steps[0].runner).name

    def _blocks(self, batch) -> list[slice]:
        n = batch.shape[0]
        return batch_blocks(n, max(step.runner.block_count(n, batch.dtype) for step in self.steps))

    def _run(self, parts: list, count: int) -> None:
        """``run(lane, index)`` of every member for each block, members in order within a block."""

        def through_members(lane, index):
            for runner, run in parts:
                try:
                    run(lane, index)
                except BaseException:
                    self.failed = runner
                    raise

        self.failed = None
        self.executor.backend.map_blocks(through_members, count)

    def forward(self, x, training):
        values, masks = self.executor.values, self.executor.masks
        blocks = self._blocks(x)
        parts = []
        mask = self.mask
        for i, step in enumerate(self.steps):  # a mask passes by each member's rule (they compute nothing from it)
            step.runner.mask = mask
            if i in self.handing_over:
                x, run = step.runner.forward_blocks(x, training, blocks, hand_over=True)
            elif i - 1 in self.handing_over:
                x, run = step.runner.forward_blocks(x, training, blocks, self.steps[i - 1].runner.bias_relu())
            else:
                x, run = step.runner.forward_blocks(x, training, blocks)
            values[step.output] = x
            mask = masks[step.output] = step.runner.output_mask(mask)
            parts.append((step.runner, run))
        self._output_mask = mask
        self._run(parts, len(blocks))
        return x

    def output_mask(self, mask):
        return self._output_mask

    def backward(self, dy, need_dx):
        gradients = self.executor.gradients
        blocks = self._blocks(dy)
        parts, finishes = [], []
        for step in self.steps:
            dy, run, finish = step.runner.backward_blocks(dy, step.need_dx, blocks)
            if step is not self.steps[-1]:
                gradients[step.sends[0][1]] = dy  # the next member's output gradient, from this member alone
            if run is not None:
                parts.append((step.runner, run))
            finishes.append(finish)
        self._run(parts, len(blocks))
        for finish in finishes:
            finish()
        return dy
