"""Embedding: integer indices (words, tokens, categories) in, rows of a learned table out (Keras's layer)."""

from __future__ import annotations

from netcore import initializers, regularizers
from netcore.errors import ShapeError
from netcore.layers.base import Layer, ParamSpec, positive_int


class Embedding(Layer):
    """Row ``i`` of the table ``embeddings (input_dim, output_dim)`` for each index ``i`` of the input:
    ``(batch, time)`` indices give ``(batch, time, output_dim)`` vectors (any input shape gains a last axis).

    The input holds integers in ``[0, input_dim)`` (stored in the model's float dtype, exact up to 2**24 in
    float32); a value outside is refused naming it and its row. The table's gradient adds the output gradients of
    every position with the same index. ``mask_zero=True`` treats index 0 as padding: the mask travels to the
    layers after it exactly as :class:`Masking`'s does (recurrent layers carry their state through padded steps,
    the loss leaves them out), so 0 cannot be a real word then. ``input_length`` (Keras 2's) declares the sequence
    length. The embedding takes a model input directly: nothing computes a gradient for its indices.
    """

    input_only = True  # indices have no gradient: nothing with weights may come before it
    takes_input_dim = True  # the vocabulary's size

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        mask_zero: bool = False,
        input_length: int | None = None,
        name: str | None = None,
        trainable: bool = True,
    ):
        super().__init__(name, trainable)
        self.input_dim = positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = positive_int("Embedding", "output_dim", output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.input_length = None if input_length is None else positive_int("Embedding", "input_length", input_length)
        if self.input_length is not None:
            self.argument_input_shape = (self.input_length,)

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        if self.input_length is not None and self.input_shape[0] != self.input_length:
            raise ShapeError(
                f"{self.name} was given input_length={self.input_length} but takes sequences of {self.input_shape[0]}"
            )
        self.output_shape = (*self.input_shape, self.output_dim)
        return self.output_shape

    def param_specs(self):
        shape = (self.input_dim, self.output_dim)
        return [ParamSpec("embeddings", shape, self.embeddings_initializer, self.embeddings_regularizer, fan=shape)]

    def config(self):
        return {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_regularizer": regularizers.to_config(self.embeddings_regularizer),
            "mask_zero": self.mask_zero,
            "input_length": self.input_length,
            **super().config(),
        }

    def indices(self, x):
        """The input as int64 indices in a reused buffer, each checked to lie in ``[0, input_dim)``."""
        idx = self.buffer("indices", (x.size,), "int64")
        idx[...] = x.reshape(-1)
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= self.input_dim:
            flat = int(((idx < 0) | (idx >= self.input_dim)).argmax())
            row, value = flat // max(1, x.size // x.shape[0]), int(idx[flat])
            raise ShapeError(
                f"{self.name}: index {value} in row {row} is outside [0, {self.input_dim}) (input_dim={self.input_dim})"
            )
        return idx

    def forward(self, x, training):
        n = x.shape[0]
        idx = self._indices = self.indices(x)
        out = self.buffer("y", (idx.shape[0], self.output_dim), self.params["embeddings"].dtype)
        self.backend.take_rows(self.params["embeddings"], idx, out)
        if self.mask_zero:
            self._kept = self.backend.xp.not_equal(x, 0, out=self.buffer("kept", x.shape, "bool"))
        return out.reshape(self.batch_shape(n))

    def output_mask(self, mask):
        return self._kept if self.mask_zero else None

    def backward(self, dy, need_dx):
        if self.trainable:
            rows = dy.reshape(-1, self.output_dim)
            self.backend.scatter_add_rows(rows, self._indices, self.grads["embeddings"])
        return None
