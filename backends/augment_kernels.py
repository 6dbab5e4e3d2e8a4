"""Kernels of the augmentation layers: random per-image transforms drawn from the model's seeded generator (on the
host, as weights are, so a seed gives the same augmentations on every backend), and the array expressions that
apply them on the device.

Geometric augmentations (flips, translations, rotations, zooms) are affine maps from output to input pixel
coordinates, ``x_in = a0 x + a1 y + a2`` and ``y_in = b0 x + b1 y + b2`` with pixel centres at integer
coordinates, resampled bilinearly (or at the nearest pixel) with Keras's fill modes for points outside the image:
``"reflect"`` (d c b a | a b c d | d c b a), ``"wrap"`` (a b c d | a b c d), ``"nearest"`` (a a a | a b c d | d d d)
and ``"constant"`` (``fill_value``).
"""

from __future__ import annotations

import math

import numpy as np

FILL_MODES = ("reflect", "wrap", "nearest", "constant")
INTERPOLATIONS = ("bilinear", "nearest")


def _uniform(rng, n, bounds) -> np.ndarray:
    low, high = bounds
    return rng.uniform(low, high, n)


class AugmentKernels:
    """Random transforms and their application, over ``self.xp``; see :class:`backends.base.Backend`."""

    # ----------------------------------------------------------------- draws (host, the model's generator)
    def random_affine(self, rng, n: int, height: int, width: int, kind: str, ranges: tuple, dtype):
        """``n`` affine maps ``(n, 6)`` = ``[a0, a1, a2, b0, b1, b2]`` of one augmentation ``kind``:

        - ``"flip"``, ``ranges = (horizontal, vertical)``: each axis mirrored with probability 1/2 where enabled;
        - ``"translate"``, ``ranges = ((low, high), (low, high))``: shifts by these fractions of the height and width;
        - ``"rotate"``, ``ranges = (low, high)``: turns by these fractions of a full turn, counter-clockwise about
          the centre;
        - ``"zoom"``, ``ranges = ((low, high), (low, high) or None)``: scales by ``1 + factor`` per axis about the
          centre (positive zooms out), the width's factor the height's when None.
        """
        a = np.zeros((n, 6))
        a[:, 0] = a[:, 4] = 1.0
        cy, cx = (height - 1) / 2, (width - 1) / 2
        if kind == "flip":
            horizontal, vertical = ranges
            flip_x = rng.random(n) < 0.5 if horizontal else np.zeros(n, bool)
            flip_y = rng.random(n) < 0.5 if vertical else np.zeros(n, bool)
            a[:, 0], a[:, 2] = np.where(flip_x, -1.0, 1.0), np.where(flip_x, width - 1.0, 0.0)
            a[:, 4], a[:, 5] = np.where(flip_y, -1.0, 1.0), np.where(flip_y, height - 1.0, 0.0)
        elif kind == "translate":
            dy = _uniform(rng, n, ranges[0]) * height
            dx = _uniform(rng, n, ranges[1]) * width
            a[:, 2], a[:, 5] = -dx, -dy  # the output at (x, y) shows the input at (x - dx, y - dy)
        elif kind == "rotate":
            angle = _uniform(rng, n, ranges) * 2 * math.pi
            cos, sin = np.cos(angle), np.sin(angle)
            # Counter-clockwise on screen (rows grow downwards): the output samples the input turned back.
            a[:, 0], a[:, 1], a[:, 3], a[:, 4] = cos, -sin, sin, cos
            a[:, 2] = cx - cos * cx + sin * cy
            a[:, 5] = cy - sin * cx - cos * cy
        elif kind == "zoom":
            zy = 1 + _uniform(rng, n, ranges[0])
            zx = zy if ranges[1] is None else 1 + _uniform(rng, n, ranges[1])
            a[:, 0], a[:, 2] = zx, cx - zx * cx
            a[:, 4], a[:, 5] = zy, cy - zy * cy
        else:
            raise ValueError(f"unknown augmentation {kind!r}")
        return self.asarray(a, dtype)

    def random_boxes(self, rng, n: int, height: int, width: int, probability: float, scale, ratio):
        """Rectangles to erase, ``(n, 4)`` int32 ``[top, left, rows, columns]`` (``rows = 0``: image left alone):
        each image with ``probability``, of an area drawn from ``scale`` (a fraction of the image) and an aspect
        ratio (rows over columns) drawn log-uniformly from ``ratio``, at a uniform position (torchvision's
        RandomErasing, clipped to the image instead of retried)."""
        chosen = rng.random(n) < probability
        area = rng.uniform(scale[0], scale[1], n) * height * width
        aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), n))
        rows = np.clip(np.round(np.sqrt(area * aspect)), 1, height).astype(np.int64)
        columns = np.clip(np.round(np.sqrt(area / aspect)), 1, width).astype(np.int64)
        top = np.floor(rng.random(n) * (height - rows + 1)).astype(np.int64)
        left = np.floor(rng.random(n) * (width - columns + 1)).astype(np.int64)
        boxes = np.stack([top, left, np.where(chosen, rows, 0), columns], axis=1)
        return self.asarray(boxes.astype(np.int32))

    # ----------------------------------------------------------------- application (device)
    def _source_index(self, index, size: int, fill_mode: str):
        """Integer source coordinates mapped into ``[0, size)`` by the fill mode (``"constant"``: clipped; the
        caller masks what lies outside)."""
        xp = self.xp
        if fill_mode == "reflect":
            period = xp.remainder(index, 2 * size)
            return xp.where(period >= size, 2 * size - 1 - period, period)
        if fill_mode == "wrap":
            return xp.remainder(index, size)
        return xp.clip(index, 0, size - 1)

    def affine_sample(self, x, matrices, out, fill_mode: str, fill_value: float, interpolation: str):
        """``out[n, y, x, :]`` = the input of image ``n`` at ``matrices[n] @ (x, y, 1)``, resampled."""
        xp = self.xp
        n, height, width, _ = x.shape
        a = matrices.reshape(n, 6, 1, 1)
        ys = xp.arange(height, dtype=x.dtype).reshape(1, height, 1)
        xs = xp.arange(width, dtype=x.dtype).reshape(1, 1, width)
        sx = a[:, 0] * xs + a[:, 1] * ys + a[:, 2]
        sy = a[:, 3] * xs + a[:, 4] * ys + a[:, 5]
        images = xp.arange(n).reshape(n, 1, 1)
        if interpolation == "nearest":
            taps = [(xp.floor(sy + 0.5), xp.floor(sx + 0.5), None)]
        else:
            y0, x0 = xp.floor(sy), xp.floor(sx)
            wy, wx = sy - y0, sx - x0
            taps = [
                (y0, x0, (1 - wy) * (1 - wx)),
                (y0, x0 + 1, (1 - wy) * wx),
                (y0 + 1, x0, wy * (1 - wx)),
                (y0 + 1, x0 + 1, wy * wx),
            ]
        total = 0
        for ty, tx, weight in taps:
            iy, ix = ty.astype(xp.int64), tx.astype(xp.int64)
            value = x[images, self._source_index(iy, height, fill_mode), self._source_index(ix, width, fill_mode)]
            if fill_mode == "constant":
                inside = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
                value = xp.where(inside[..., None], value, x.dtype.type(fill_value))
            total = total + (value if weight is None else weight[..., None] * value)
        out[...] = total
        return out

    def adjust_brightness(self, x, delta, low: float, high: float, out):
        """``out = clip(x + delta, low, high)`` with one ``delta`` per image (``(n, 1, 1, 1)``)."""
        return self.xp.clip(x + delta, low, high, out=out)

    def adjust_contrast(self, x, factor, low: float, high: float, out):
        """``out = clip((x - mean) * factor + mean, low, high)``, ``mean`` per image and channel over its pixels."""
        mean = x.mean(axis=(1, 2), keepdims=True)
        return self.xp.clip((x - mean) * factor + mean, low, high, out=out)

    def erase(self, x, boxes, value: float, out):
        """``out = x`` with each image's rectangle ``boxes[n] = [top, left, rows, columns]`` set to ``value``."""
        xp = self.xp
        n, height, width, _ = x.shape
        top, left, rows, columns = (boxes[:, k].reshape(n, 1, 1) for k in range(4))
        ys = xp.arange(height).reshape(1, height, 1)
        xs = xp.arange(width).reshape(1, 1, width)
        inside = (ys >= top) & (ys < top + rows) & (xs >= left) & (xs < left + columns)
        out[...] = xp.where(inside[..., None], x.dtype.type(value), x)
        return out
