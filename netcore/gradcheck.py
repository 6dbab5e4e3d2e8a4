"""Finite-difference gradient checking: the proof that every backward pass matches its forward pass."""

from __future__ import annotations

import math

from netcore.errors import NetcoreError


class GradientReport(dict):
    """``{"dense.W": relative_error, ...}`` for every parameter checked, in model order."""

    def worst(self) -> tuple[str, float]:
        name = max(self, key=self.get)
        return name, self[name]

    def raise_if_above(self, tolerance: float = 1e-6) -> GradientReport:
        """Raise naming the first parameter (and so the layer) whose relative error exceeds ``tolerance``."""
        for name, error in self.items():
            if not error <= tolerance:
                raise NetcoreError(f"gradient check failed at {name}: relative error {error:.3g} > {tolerance:g}")
        return self


def check_gradients(
    model, X, y, eps: float = 1e-6, max_entries: int = 50, sample_weight=None, seed: int = 0
) -> GradientReport:
    """Compare backpropagated gradients with central differences ``(L(p + eps) - L(p - eps)) / (2 eps)``.

    ``X`` and ``y`` take the forms ``fit`` takes (lists or dicts for several inputs or outputs).

    Runs on a float64 copy of ``model`` (same device, weights and loss), in training mode with the random generator
    rewound before every evaluation, so dropout and noise draw the same masks each time. Checks up to
    ``max_entries`` entries of each trainable parameter (all of them when it is smaller). Returns the relative error
    ``|a - n| / (|a| + |n|)`` (Euclidean norms over the checked entries) per parameter, named ``layer.param``.
    """
    twin = model.clone(dtype="float64")
    backend = twin.backend
    pick = backend.rng(seed)
    with backend.scope():
        X, Y, weights = twin.prepare(X, y, sample_weight=sample_weight)
        start = backend.rng_state(twin.rng)

        def loss() -> float:
            backend.set_rng_state(twin.rng, start)
            return backend.to_float(twin.loss_and_gradients(X, Y, weights))

        loss()
        analytic = backend.to_numpy(twin.gradient_buffer).copy()
        report = GradientReport()
        names = twin.leaf_names()
        offset = 0
        for layer, spec in twin.buffers.trained_specs():  # frozen weights get no gradient
            size = math.prod(spec.shape)
            flat = twin.parameter_buffer[offset : offset + size]
            entries = range(size) if size <= max_entries else sorted(pick.choice(size, max_entries, replace=False))
            diff_sq = analytic_sq = numeric_sq = 0.0
            for k in entries:
                k = int(k)
                original = backend.to_float(flat[k])
                flat[k] = original + eps
                plus = loss()
                flat[k] = original - eps
                minus = loss()
                flat[k] = original
                numeric = (plus - minus) / (2 * eps)
                a = float(analytic[offset + k])
                diff_sq += (a - numeric) ** 2
                analytic_sq += a * a
                numeric_sq += numeric * numeric
            scale = math.sqrt(analytic_sq) + math.sqrt(numeric_sq)
            report[f"{names[id(layer)]}.{spec.name}"] = math.sqrt(diff_sq) / scale if scale > 1e-300 else 0.0
            offset += size
    return report
