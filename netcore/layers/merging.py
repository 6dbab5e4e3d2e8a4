"""Merge layers: several tensors in, one out (Keras's ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum`` and ``Concatenate``). They join the branches of functional models: ``Add()([x, shortcut])`` is a
residual connection, ``Concatenate()([image_features, table])`` joins two inputs.

Shapes follow Keras: the element-wise merges take inputs of one rank whose sizes agree or are 1 on each axis (a size
of 1 is broadcast, and its gradient summed back); ``Concatenate`` takes inputs that agree on every axis but its own.
"""

from __future__ import annotations

from netcore.errors import ConfigurationError, ShapeError
from netcore.layers.base import Layer


def _describe(shapes) -> str:
    return ", ".join(str((None, *shape)) for shape in shapes)


class _Merge(Layer):
    """What every merge shares: a list of inputs, the masks of masked sequences combined (a step is kept where every
    input keeps it), and gradient buffers of its own for every input but at most one (the model may overwrite each
    input's gradient independently)."""

    multiple_inputs = True
    #: How many inputs the layer takes at least, and at most (None: any number).
    min_inputs, max_inputs = 2, None

    def check_count(self, shapes) -> list[tuple[int, ...]]:
        shapes = [tuple(shape) for shape in shapes] if isinstance(shapes, (list, tuple)) else []
        if not shapes or not all(isinstance(shape, tuple) for shape in shapes):
            raise ConfigurationError(f"{self.name} ({type(self).__name__}) is called on a list of tensors")
        count = len(shapes)
        if count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs):
            wanted = (
                f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs else f"at least {self.min_inputs}"
            )
            raise ShapeError(f"{self.name} ({type(self).__name__}) merges {wanted} tensors, got {count}")
        return shapes

    def shape_error(self, shapes, why: str) -> ShapeError:
        kind = type(self).__name__
        return ShapeError(f"{self.name} ({kind}) cannot merge inputs of shapes {_describe(shapes)}: {why}")

    def output_mask(self, mask):
        present = [m for m in (mask or []) if m is not None]
        if not present:
            return None
        if all(m is present[0] for m in present):
            return present[0]
        return self.backend.mask_and(present, self.buffer("mask", present[0].shape, "bool"))

    def gradient_buffers(self, dy, need_dx, shareable: bool) -> list:
        """A buffer per wanted input (None for the others); with ``shareable``, ``dy`` itself serves the first
        wanted input of the output's shape (its gradient is ``dy``, which this layer no longer needs)."""
        buffers, shared = [], not shareable
        for i, (wanted, shape) in enumerate(zip(need_dx, self.input_shape, strict=True)):
            if not wanted:
                buffers.append(None)
            elif not shared and shape == self.output_shape:
                buffers.append(dy)
                shared = True
            else:
                buffers.append(self.buffer(f"dx{i}", self.batch_shape(dy.shape[0], shape), dy.dtype))
        return buffers


class _ElementwiseMerge(_Merge):
    kind = ""

    def build(self, input_shapes):
        shapes = self.check_count(input_shapes)
        if len({len(shape) for shape in shapes}) != 1:
            raise self.shape_error(shapes, "their ranks differ")
        output = []
        for sizes in zip(*shapes, strict=True):
            larger = {size for size in sizes if size != 1}
            if len(larger) > 1:
                raise self.shape_error(shapes, "sizes on one axis must agree or be 1")
            output.append(larger.pop() if larger else 1)
        self.input_shape, self.output_shape = shapes, tuple(output)
        return self.output_shape

    def forward(self, xs, training):
        out = self.buffer("y", self.batch_shape(xs[0].shape[0]), xs[0].dtype)
        self.backend.merge_forward(self.kind, xs, out)
        if training:
            self._cache = (xs, out)
        return out

    def backward(self, dy, need_dx):
        xs, y = self._cache
        # A sum, mean or difference reads dy only as a whole, so one input's gradient may be written into it.
        linear = self.kind in ("add", "average", "subtract")
        dxs = self.gradient_buffers(dy, need_dx, shareable=linear)
        scratch = None if self.kind in ("add", "average") else self.buffer("scratch", dy.shape, dy.dtype)
        hit = taken = None
        if self.kind in ("maximum", "minimum"):
            hit, taken = (self.buffer(key, dy.shape, "bool") for key in ("hit", "taken"))
        return self.backend.merge_backward(self.kind, dy, xs, y, dxs, scratch, hit, taken)


class Add(_ElementwiseMerge):
    """The sum of its inputs: ``Add()([x, shortcut])``, the residual connection."""

    kind = "add"


class Subtract(_ElementwiseMerge):
    """The first input minus the second."""

    kind = "subtract"
    min_inputs = max_inputs = 2


class Multiply(_ElementwiseMerge):
    """The element-wise product of its inputs (gates, attention weights)."""

    kind = "multiply"


class Average(_ElementwiseMerge):
    """The element-wise mean of its inputs (ensembles)."""

    kind = "average"


class Maximum(_ElementwiseMerge):
    """The element-wise maximum; the gradient goes to the first input holding it."""

    kind = "maximum"


class Minimum(_ElementwiseMerge):
    """The element-wise minimum; the gradient goes to the first input holding it."""

    kind = "minimum"


class Concatenate(_Merge):
    """The inputs side by side along ``axis`` (Keras's axis: -1, the last, by default; 0 would be the batch)."""

    def __init__(self, axis: int = -1, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        if not isinstance(axis, int) or isinstance(axis, bool) or axis == 0:
            raise ConfigurationError(f"Concatenate axis must be a non-zero integer (0 is the batch), got {axis!r}")
        self.axis = axis

    def config(self):
        return {"axis": self.axis, **super().config()}

    def build(self, input_shapes):
        shapes = self.check_count(input_shapes)
        rank = len(shapes[0])
        if len({len(shape) for shape in shapes}) != 1:
            raise self.shape_error(shapes, "their ranks differ")
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis  # an axis of the samples
        if not 0 <= axis < rank:
            raise self.shape_error(shapes, f"axis {self.axis} is outside samples of rank {rank}")
        rest = {shape[:axis] + shape[axis + 1 :] for shape in shapes}
        if len(rest) != 1:
            raise self.shape_error(shapes, f"they must agree on every axis but axis {self.axis}")
        self.sample_axis = axis
        self.input_shape = shapes
        self.output_shape = (*shapes[0][:axis], sum(shape[axis] for shape in shapes), *shapes[0][axis + 1 :])
        return self.output_shape

    def output_mask(self, mask):
        if any(m is not None for m in mask or []) and self.sample_axis == 0:
            raise ConfigurationError(f"{self.name}: concatenating masked sequences along time is not supported")
        return super().output_mask(mask)

    def forward(self, xs, training):
        out = self.buffer("y", self.batch_shape(xs[0].shape[0]), xs[0].dtype)
        return self.backend.concatenate_forward(xs, self.sample_axis + 1, out)

    def backward(self, dy, need_dx):
        dxs = self.gradient_buffers(dy, need_dx, shareable=False)
        widths = [shape[self.sample_axis] for shape in self.input_shape]
        return self.backend.concatenate_backward(dy, widths, self.sample_axis + 1, dxs)
