"""Layers that regularise by noise in training and are the identity in evaluation: dropout of units, dropout of
whole feature maps, and additive Gaussian noise. Masks and noise come from the model's seeded generator."""

from __future__ import annotations

from netcore.errors import ConfigurationError, ShapeError
from netcore.layers.base import Layer


def _rate(owner: str, rate) -> float:
    if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1):
        raise ConfigurationError(f"{owner} rate must be in [0, 1), got {rate!r}")
    return float(rate)


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the rest by
    ``1 / (1 - rate)``, so evaluation needs no rescaling. Works on input of any shape."""

    def __init__(self, rate: float, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        self.rate = _rate(type(self).__name__, rate)
        self.rng = None  # the model's generator, set by the model
        self._mask = None

    def config(self):
        return {"rate": self.rate, **super().config()}

    def mask_shape(self, x_shape) -> tuple[int, ...]:
        """One draw per unit."""
        return tuple(x_shape)

    def forward(self, x, training):
        if not training or self.rate == 0:
            self._mask = None
            return x
        mask = self.buffer("mask", self.mask_shape(x.shape), x.dtype)
        out = self.buffer("y", x.shape, x.dtype)
        self._mask = mask
        return self.backend.dropout_forward(x, self.rate, self.rng, mask, out)

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        if self._mask is None:
            return dy
        return self.backend.dropout_backward(dy, self._mask, out=dy)


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: each channel of each image is kept (and scaled by ``1 / (1 - rate)``) or
    zeroed as a whole, because neighbouring pixels of one map are too correlated for unit dropout to regularise."""

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name} takes images (height, width, channels), got input shape {input_shape}")
        return super().build(input_shape)

    def mask_shape(self, x_shape):
        return (x_shape[0], 1, 1, x_shape[3])


class GaussianNoise(Layer):
    """Adds ``N(0, stddev^2)`` noise in training (data augmentation / regularisation); identity in evaluation."""

    default_name = "gaussiannoise"

    def __init__(self, stddev: float, name: str | None = None, trainable: bool = True):
        super().__init__(name, trainable)
        if not stddev >= 0:
            raise ConfigurationError(f"GaussianNoise stddev must be >= 0, got {stddev!r}")
        self.stddev = float(stddev)
        self.rng = None

    def config(self):
        return {"stddev": self.stddev, **super().config()}

    def forward(self, x, training):
        if not training or self.stddev == 0:
            return x
        out = self.buffer("y", x.shape, x.dtype)
        return self.backend.gaussian_noise(x, self.stddev, self.rng, out)

    def backward(self, dy, need_dx):
        return dy if need_dx else None
