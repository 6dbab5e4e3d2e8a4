"""Image augmentation layers (Keras's names, arguments and meanings, plus torchvision's random erasing): active in
training only, the identity in evaluation and prediction. Each draws its per-image transforms from the model's
seeded generator, so a seed fixes them on every backend.

They transform the input and have no gradient: a model refuses them after a layer with weights.
"""

from __future__ import annotations

from backends.augment_kernels import FILL_MODES, INTERPOLATIONS
from netcore.errors import ConfigurationError, NetcoreError
from netcore.layers.base import Layer
from netcore.layers.convolution import image_shape


def factor_range(owner: str, what: str, factor, low: float = -1.0, high: float = 1.0) -> tuple[float, float]:
    """Keras's factor: a number ``f`` means ``(-f, f)``, a pair is ``(lower, upper)``; both within ``[low, high]``."""
    try:
        bounds = (-float(factor), float(factor)) if isinstance(factor, (int, float)) else tuple(map(float, factor))
    except (TypeError, ValueError):
        bounds = ()
    if len(bounds) != 2 or not bounds[0] <= bounds[1] or not (low <= bounds[0] and bounds[1] <= high):
        raise ConfigurationError(
            f"{owner} {what} must be a number or a (lower, upper) pair within [{low}, {high}], got {factor!r}"
        )
    return bounds


def _choice(owner: str, what: str, value, options) -> str:
    if value not in options:
        raise ConfigurationError(f"{owner} {what} must be one of {options}, got {value!r}")
    return value


class _Augmentation(Layer):
    """Shared by the augmentation layers: images in, images of the same shape out, nothing to learn."""

    input_only = True

    def __init__(self, name=None, trainable=True):
        super().__init__(name, trainable)
        self.rng = None  # the model's generator, set by the model

    def build(self, input_shape):
        self.input_shape = self.output_shape = image_shape(self, input_shape)
        return self.output_shape

    def forward(self, x, training):
        if not training:
            return x
        return self.augment(x, self.buffer("y", x.shape, x.dtype))

    def augment(self, x, out):
        raise NotImplementedError

    def backward(self, dy, need_dx):
        if need_dx:  # the model places these before every layer with weights, so nothing asks
            raise NetcoreError(f"{self.name} has no input gradient")
        return None


class _Geometric(_Augmentation):
    """An affine resampling per image (Keras's ``fill_mode``, ``interpolation`` and ``fill_value``)."""

    kind = ""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", fill_value=0.0, name=None, trainable=True):
        super().__init__(name, trainable)
        owner = type(self).__name__
        self.fill_mode = _choice(owner, "fill_mode", fill_mode, FILL_MODES)
        self.interpolation = _choice(owner, "interpolation", interpolation, INTERPOLATIONS)
        self.fill_value = float(fill_value)

    def ranges(self) -> tuple:
        raise NotImplementedError

    def config(self):
        return {
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            **super().config(),
        }

    def augment(self, x, out):
        backend = self.backend
        n, height, width, _ = x.shape
        matrices = backend.random_affine(self.rng, n, height, width, self.kind, self.ranges(), x.dtype)
        return backend.affine_sample(x, matrices, out, self.fill_mode, self.fill_value, self.interpolation)


class RandomFlip(_Geometric):
    """Mirrors each image left-right and/or upside down, each with probability 1/2: ``mode="horizontal"``,
    ``"vertical"`` or ``"horizontal_and_vertical"`` (Keras's default)."""

    kind = "flip"
    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.mode = _choice("RandomFlip", "mode", mode, self.MODES)

    def ranges(self):
        return ("horizontal" in self.mode, "vertical" in self.mode)

    def config(self):
        return {"mode": self.mode, "name": self.name, "trainable": self.trainable}  # always exact: no resampling


class RandomTranslation(_Geometric):
    """Shifts each image by a random fraction of its height (``height_factor``) and width (``width_factor``)."""

    kind = "translate"

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", fill_value=0.0,
                 name=None, trainable=True):  # fmt: skip
        super().__init__(fill_mode, interpolation, fill_value, name, trainable)
        self.height_factor = factor_range("RandomTranslation", "height_factor", height_factor)
        self.width_factor = factor_range("RandomTranslation", "width_factor", width_factor)

    def ranges(self):
        return (self.height_factor, self.width_factor)

    def config(self):
        factors = {"height_factor": list(self.height_factor), "width_factor": list(self.width_factor)}
        return {**factors, **super().config()}


class RandomRotation(_Geometric):
    """Turns each image about its centre by a random fraction of a full turn (``factor=0.1``: up to 36 degrees
    either way); positive is counter-clockwise."""

    kind = "rotate"

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", fill_value=0.0, name=None,
                 trainable=True):  # fmt: skip
        super().__init__(fill_mode, interpolation, fill_value, name, trainable)
        self.factor = factor_range("RandomRotation", "factor", factor)

    def ranges(self):
        return self.factor

    def config(self):
        return {"factor": list(self.factor), **super().config()}


class RandomZoom(_Geometric):
    """Zooms each image about its centre by ``1 + factor`` (positive zooms out, negative in), drawn per axis from
    ``height_factor`` and ``width_factor`` (None: the height's, keeping the aspect ratio)."""

    kind = "zoom"

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
                 fill_value=0.0, name=None, trainable=True):  # fmt: skip
        super().__init__(fill_mode, interpolation, fill_value, name, trainable)
        self.height_factor = factor_range("RandomZoom", "height_factor", height_factor, high=float("inf"))
        self.width_factor = (
            None
            if width_factor is None
            else factor_range("RandomZoom", "width_factor", width_factor, high=float("inf"))
        )

    def ranges(self):
        return (self.height_factor, self.width_factor)

    def config(self):
        width = None if self.width_factor is None else list(self.width_factor)
        return {"height_factor": list(self.height_factor), "width_factor": width, **super().config()}


class RandomBrightness(_Augmentation):
    """Adds one random offset per image, a fraction ``factor`` of the value range, and clips to ``value_range``
    (Keras's default ``(0, 255)``; pass ``(0, 1)`` for images scaled to [0, 1])."""

    def __init__(self, factor, value_range=(0, 255), name=None, trainable=True):
        super().__init__(name, trainable)
        self.factor = factor_range("RandomBrightness", "factor", factor)
        self.value_range = _value_range("RandomBrightness", value_range)

    def config(self):
        return {"factor": list(self.factor), "value_range": list(self.value_range), **super().config()}

    def augment(self, x, out):
        low, high = self.value_range
        scale = high - low
        delta = self.backend.random_uniform(
            self.rng, (x.shape[0], 1, 1, 1), self.factor[0] * scale, self.factor[1] * scale, x.dtype
        )
        return self.backend.adjust_brightness(x, delta, low, high, out)


class RandomContrast(_Augmentation):
    """Scales each image's deviations from its per-channel mean by a random factor in ``[1 - lower, 1 + upper]``
    (``factor=f``: ``[1 - f, 1 + f]``) and clips to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), name=None, trainable=True):
        super().__init__(name, trainable)
        pair = (factor, factor) if isinstance(factor, (int, float)) else factor
        try:
            lower, upper = map(float, pair)
        except (TypeError, ValueError):
            lower = upper = -1.0
        if not (0 <= lower <= 1 and upper >= 0):
            raise ConfigurationError(
                f"RandomContrast factor must be a number in [0, 1] or a (lower, upper) pair with lower in [0, 1] and "
                f"upper >= 0, got {factor!r}"
            )
        self.factor = (-lower, upper)  # offsets from a factor of 1
        self.value_range = _value_range("RandomContrast", value_range)

    def config(self):
        lower, upper = self.factor
        return {"factor": [-lower, upper], "value_range": list(self.value_range), **super().config()}

    def augment(self, x, out):
        lower, upper = self.factor
        factor = self.backend.random_uniform(self.rng, (x.shape[0], 1, 1, 1), 1 + lower, 1 + upper, x.dtype)
        return self.backend.adjust_contrast(x, factor, *self.value_range, out)


class RandomErasing(_Augmentation):
    """Sets a random rectangle of each image, chosen with ``probability``, to ``value``: its area a fraction
    ``scale`` of the image, its aspect ratio (height over width) log-uniform in ``ratio`` (torchvision's
    RandomErasing; a rectangle larger than the image is clipped to it rather than drawn again)."""

    def __init__(self, probability=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, name=None, trainable=True):
        super().__init__(name, trainable)
        if not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise ConfigurationError(f"RandomErasing probability must be in [0, 1], got {probability!r}")
        self.probability = float(probability)
        self.scale = factor_range("RandomErasing", "scale", scale, low=0.0, high=1.0)
        self.ratio = factor_range("RandomErasing", "ratio", ratio, low=1e-6, high=float("inf"))
        self.value = float(value)

    def config(self):
        return {
            "probability": self.probability,
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "value": self.value,
            **super().config(),
        }

    def augment(self, x, out):
        n, height, width, _ = x.shape
        boxes = self.backend.random_boxes(self.rng, n, height, width, self.probability, self.scale, self.ratio)
        return self.backend.erase(x, boxes, self.value, out)


def _value_range(owner: str, value_range) -> tuple[float, float]:
    try:
        low, high = map(float, value_range)
    except (TypeError, ValueError):
        low = high = 0.0
    if not low < high:
        raise ConfigurationError(f"{owner} value_range must be a (low, high) pair with low < high, got {value_range!r}")
    return low, high
