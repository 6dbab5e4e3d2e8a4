"""The reference workloads and what their matrix products cost.

W1 (CPU): MLP 784-512-256-10, ReLU, softmax cross-entropy, Adam(lr=1e-3), batch 128, 60,000 synthetic float32 rows,
one shuffled epoch. W2 (GPU, launch-bound): the same network, time per step, data on the GPU. W3 (GPU,
compute-bound): 4096-4096-4096-10 at batch 4096, time per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple[int, ...]
    batch: int
    rows: int  # rows per epoch (CPU) or the one resident batch (GPU)
    unit: str  # "epoch" or "step"
    device: str  # "cpu" or "gpu"

    @property
    def steps(self) -> int:
        """Optimizer steps per timed unit."""
        return -(-self.rows // self.batch) if self.unit == "epoch" else 1

    def gemm_shapes(self, batch: int | None = None) -> list[tuple[int, int, int]]:
        """(m, k, n) of every matrix product of one training step: forward, weight gradient, input gradient
        (none for the first layer, whose input needs no gradient)."""
        b = batch or self.batch
        shapes = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            shapes.append((b, n_in, n_out))
            shapes.append((n_in, b, n_out))
            if i > 0:
                shapes.append((b, n_out, n_in))
        return shapes

    def flops(self) -> float:
        """Matrix-multiply FLOPs of one timed unit (an epoch covers every row once)."""
        per_row = sum(2 * m * k * n for m, k, n in self.gemm_shapes(1))  # linear in the batch size
        return float(per_row * (self.rows if self.unit == "epoch" else self.batch))

    def data(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = self.rows if self.unit == "epoch" else self.batch
        X = rng.standard_normal((n, self.sizes[0]), dtype=np.float32)
        y = rng.integers(0, self.sizes[-1], n)
        return X, y

    def scaled(self, rows: int | None = None, batch: int | None = None, hidden=None) -> Workload:
        """The same workload with other rows, batch size or hidden widths (sweeps, smoke tests)."""
        sizes = self.sizes if hidden is None else (self.sizes[0], *hidden, self.sizes[-1])
        return Workload(self.name, tuple(sizes), batch or self.batch, rows or self.rows, self.unit, self.device)


WORKLOADS = {
    "W1": Workload("W1", (784, 512, 256, 10), 128, 60_000, "epoch", "cpu"),
    "W2": Workload("W2", (784, 512, 256, 10), 128, 128, "step", "gpu"),
    "W3": Workload("W3", (4096, 4096, 4096, 10), 4096, 4096, "step", "gpu"),
}
