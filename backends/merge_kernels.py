"""Kernels of the merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate): element-wise
combinations of several arrays of one shape (or broadcasting along axes of size one, Keras's rule), and their
gradients. Every call writes into buffers it is given, so a training step allocates nothing."""

from __future__ import annotations

#: The element-wise merges and how they fold a further input into the running result.
ELEMENTWISE = ("add", "subtract", "multiply", "average", "maximum", "minimum")


class MergeKernels:
    """Merge kernels over ``self.xp``; see :class:`backends.base.Backend`."""

    def merge_forward(self, kind: str, inputs: list, out):
        """``out = x0 + x1 + ...`` (``add``), ``x0 - x1``, the product, the mean, the maximum or the minimum."""
        xp = self.xp
        out[...] = inputs[0]
        for x in inputs[1:]:
            if kind in ("add", "average"):
                xp.add(out, x, out=out)
            elif kind == "subtract":
                xp.subtract(out, x, out=out)
            elif kind == "multiply":
                xp.multiply(out, x, out=out)
            elif kind == "maximum":
                xp.maximum(out, x, out=out)
            else:
                xp.minimum(out, x, out=out)
        if kind == "average":
            out *= 1 / len(inputs)
        return out

    def merge_backward(self, kind: str, dy, inputs: list, y, dxs: list, scratch, hit, taken) -> list:
        """The gradient of each input whose entry of ``dxs`` is a buffer (None: not wanted), from ``dy`` (which may
        be overwritten). ``scratch`` is a work array of ``dy``'s shape, ``hit`` and ``taken`` boolean ones: a
        maximum or minimum sends the gradient to the first input that holds it (TensorFlow's and Keras's rule for
        ties)."""
        xp = self.xp
        if kind == "average":
            dy *= 1 / len(inputs)
        if kind in ("maximum", "minimum"):
            taken[...] = False
        for i, dx in enumerate(dxs):
            if dx is None and kind not in ("maximum", "minimum"):
                continue
            if kind in ("add", "average") or (kind == "subtract" and i == 0):
                grad = dy
            elif kind == "subtract":
                grad = xp.negative(dy, out=scratch)
            elif kind == "multiply":
                scratch[...] = dy
                for j, x in enumerate(inputs):
                    if j != i:
                        xp.multiply(scratch, x, out=scratch)
                grad = scratch
            else:  # where this input equals the result and no earlier input did
                xp.equal(inputs[i], y, out=hit)
                xp.greater(hit, taken, out=hit)  # hit and not taken
                xp.logical_or(taken, hit, out=taken)
                scratch[...] = hit  # as 0 and 1 first: a product of floats and booleans casts through a buffer
                grad = xp.multiply(scratch, dy, out=scratch)
            if dx is not None:
                self.sum_to_shape(grad, dx)
        return dxs

    def sum_to_shape(self, grad, out):
        """``out`` = ``grad`` summed over the axes where ``out`` has size one and ``grad`` does not (the gradient
        of a broadcast input); a plain copy when the shapes agree."""
        if grad is out:
            return out
        if grad.shape == out.shape:
            out[...] = grad
            return out
        axes = tuple(i for i, (g, o) in enumerate(zip(grad.shape, out.shape, strict=True)) if o == 1 and g != 1)
        self.xp.sum(grad, axis=axes, keepdims=True, out=out)
        return out

    def concatenate_forward(self, inputs: list, axis: int, out):
        """``out`` = the inputs side by side along ``axis`` (an axis of the batch arrays)."""
        start = 0
        for x in inputs:
            width = x.shape[axis]
            out[(slice(None),) * axis + (slice(start, start + width),)] = x
            start += width
        return out

    def concatenate_backward(self, dy, widths: list[int], axis: int, dxs: list) -> list:
        """Each wanted input's slice of ``dy`` along ``axis``, copied into its buffer in ``dxs``."""
        start = 0
        for width, dx in zip(widths, dxs, strict=True):
            if dx is not None:
                dx[...] = dy[(slice(None),) * axis + (slice(start, start + width),)]
            start += width
        return dxs

    def mask_and(self, masks: list, out):
        """``out`` = the element-wise AND of boolean masks (a merge of masked sequences keeps the steps every input
        keeps)."""
        out[...] = masks[0]
        for mask in masks[1:]:
            self.xp.logical_and(out, mask, out=out)
        return out
