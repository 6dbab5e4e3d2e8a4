"""The reference workloads and what their matrix products cost.

W1 (CPU): MLP 784-512-256-10, ReLU, softmax cross-entropy, Adam(lr=1e-3), batch 128, 60,000 synthetic float32 rows,
one shuffled epoch. W2 (GPU, launch-bound): the same network, time per step, data on the GPU. W3 (GPU,
compute-bound): 4096-4096-4096-10 at batch 4096, time per step. W4 (CPU): LeNet-5 on 28x28x1 images, batch 64,
60,000 rows, one epoch. W5 (GPU): 32x32x3 images, convolutions of 64, 128 and 256 filters (3x3, same, ReLU, 2x2
max-pool after each), a dense head, batch 256, time per step. W6 (CPU): a recurrent layer of 128 units (LSTM, GRU or
SimpleRNN) over 50 steps of 32 features, Dense(10, softmax) on the last state, Adam, batch 64, time per step. W7
(CPU): a CIFAR-shaped network on 32x32x3 images: two 3x3 same convolutions of 32 filters, 2x2 max-pool, two of 64,
2x2 max-pool, Dense 256, Dense 10, batch 128, 10,000 rows, one epoch. infer (CPU): ``predict`` with W1's network,
time per call, on one row (serving, where what surrounds the products is most of the cost) and on 10,000 rows.

A workload describes its network once and builds it for each contender (netcore layers, a PyTorch module), with the
matrix products a training step needs (convolutions as the products of their patches, as netcore computes them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.sizes[0],)

    @property
    def classes(self) -> int:
        return self.sizes[-1]

    @property
    def is_mlp(self) -> bool:
        return True

    def netcore_layers(self) -> list:
        from netcore.layers import Dense

        return [Dense(w, "relu") for w in self.sizes[1:-1]] + [Dense(self.sizes[-1], "softmax")]

    def torch_module(self, torch):
        """The same network in PyTorch (logits out: the loss applies the softmax)."""
        layers = []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(self.sizes) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    @staticmethod
    def torch_layout(X: np.ndarray) -> np.ndarray:
        """The data as PyTorch's module takes it."""
        return X

    def scaled(self, rows: int | None = None, batch: int | None = None, hidden=None) -> Workload:
        """The same workload with other rows, batch size or hidden widths (sweeps, smoke tests)."""
        sizes = self.sizes if hidden is None else (self.sizes[0], *hidden, self.sizes[-1])
        return Workload(self.name, tuple(sizes), batch or self.batch, rows or self.rows, self.unit, self.device)


@dataclass(frozen=True)
class Conv:
    """A convolution block: ``filters`` of ``kernel x kernel``, ``padding``, ReLU, then ``pool x pool`` max pooling
    (none for 1)."""

    filters: int
    kernel: int
    padding: str = "same"
    pool: int = 2


@dataclass(frozen=True)
class ConvWorkload:
    """A convolutional network on channels-last images: conv blocks, flatten, ReLU dense layers, softmax."""

    name: str
    image: tuple[int, int, int]
    convs: tuple[Conv, ...]
    dense: tuple[int, ...]
    classes: int
    batch: int
    rows: int
    unit: str
    device: str

    @property
    def steps(self) -> int:
        return -(-self.rows // self.batch) if self.unit == "epoch" else 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.image

    @property
    def is_mlp(self) -> bool:
        return False

    @property
    def sizes(self) -> tuple[str, ...]:
        """The architecture in words, for reports."""
        blocks = [f"conv{c.filters}x{c.kernel}" + (f"+pool{c.pool}" if c.pool > 1 else "") for c in self.convs]
        return ("x".join(map(str, self.image)), *blocks, *map(str, self.dense), str(self.classes))

    def _geometry(self):
        """Per conv block: (input height, width, channels, output height, width) of the convolution."""
        height, width, channels = self.image
        out = []
        for conv in self.convs:
            oh, ow = (height, width) if conv.padding == "same" else (height - conv.kernel + 1, width - conv.kernel + 1)
            out.append((height, width, channels, oh, ow))
            height, width, channels = oh // conv.pool, ow // conv.pool, conv.filters
        return out, height * width * channels

    def gemm_shapes(self, batch: int | None = None) -> list[tuple[int, int, int]]:
        """(m, k, n) of every product of a training step: per convolution the forward product of its patches, the
        kernel gradient and (but for the first) the patch gradient; then the dense layers' three products."""
        b = batch or self.batch
        shapes = []
        blocks, flat = self._geometry()
        for i, (conv, (_, _, channels, oh, ow)) in enumerate(zip(self.convs, blocks, strict=True)):
            pixels, patch = b * oh * ow, conv.kernel * conv.kernel * channels
            shapes += [(pixels, patch, conv.filters), (patch, pixels, conv.filters)]
            if i > 0:
                shapes.append((pixels, conv.filters, patch))
        widths = (flat, *self.dense, self.classes)
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            shapes += [(b, n_in, n_out), (n_in, b, n_out), (b, n_out, n_in)]
        return shapes

    def flops(self) -> float:
        per_row = sum(2 * m * k * n for m, k, n in self.gemm_shapes(1))
        return float(per_row * (self.rows if self.unit == "epoch" else self.batch))

    def data(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = self.rows if self.unit == "epoch" else self.batch
        return rng.standard_normal((n, *self.image), dtype=np.float32), rng.integers(0, self.classes, n)

    def netcore_layers(self) -> list:
        from netcore.layers import Conv2D, Dense, Flatten, MaxPooling2D

        layers = []
        for conv in self.convs:
            layers.append(Conv2D(conv.filters, conv.kernel, padding=conv.padding, activation="relu"))
            if conv.pool > 1:
                layers.append(MaxPooling2D(conv.pool))
        layers.append(Flatten())
        return layers + [Dense(w, "relu") for w in self.dense] + [Dense(self.classes, "softmax")]

    def torch_module(self, torch):
        """The same network in PyTorch, on channels-first images (see :meth:`torch_layout`)."""
        nn = torch.nn
        layers, channels = [], self.image[2]
        for conv in self.convs:
            layers += [nn.Conv2d(channels, conv.filters, conv.kernel, padding=conv.padding), nn.ReLU()]
            if conv.pool > 1:
                layers.append(nn.MaxPool2d(conv.pool))
            channels = conv.filters
        layers.append(nn.Flatten())
        widths = (self._geometry()[1], *self.dense)
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(widths[-1], self.classes))

    @staticmethod
    def torch_layout(X: np.ndarray) -> np.ndarray:
        """Channels-first images, PyTorch's layout (and its fast path for convolutions on the CPU)."""
        return np.ascontiguousarray(X.transpose(0, 3, 1, 2))

    def scaled(self, rows: int | None = None, batch: int | None = None, hidden=None) -> ConvWorkload:
        """Other rows or batch size (widths are not scaled: ``hidden`` must be None)."""
        if hidden is not None:
            raise ValueError(f"{self.name}'s widths are not scaled")
        return replace(self, batch=batch or self.batch, rows=rows or self.rows)


@dataclass(frozen=True)
class RecurrentWorkload:
    """A recurrent layer over sequences, softmax on its last state; timed per optimizer step over a short epoch.
    ``cell`` is ``"lstm"``, ``"gru"`` or ``"rnn"``; :data:`CELLS` runs all three side by side."""

    name: str
    cell: str
    time: int
    features: int
    units: int
    classes: int
    batch: int
    rows: int
    unit: str = "epoch"
    device: str = "cpu"
    #: Report time per optimizer step rather than per epoch.
    per_step: bool = True

    @property
    def steps(self) -> int:
        return -(-self.rows // self.batch)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.time, self.features)

    @property
    def is_mlp(self) -> bool:
        return False

    @property
    def blocks(self) -> int:
        return {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]

    @property
    def sizes(self) -> tuple[str, ...]:
        return (f"{self.time}x{self.features}", f"{self.cell}{self.units}", str(self.classes))

    def with_cell(self, cell: str) -> RecurrentWorkload:
        return replace(self, cell=cell)

    #: The cases the harness runs side by side (see :class:`InferenceWorkload`): every recurrent cell.
    @property
    def cases(self) -> tuple[str, ...]:
        return CELLS

    @property
    def case(self) -> str:
        return self.cell

    def with_case(self, case: str) -> RecurrentWorkload:
        return self.with_cell(case)

    def gemm_shapes(self, batch: int | None = None) -> list[tuple[int, int, int]]:
        """The input projection of all steps and its kernel gradient (the input needs no gradient), the recurrent
        product of every step forward and backward and its kernel gradient over all steps, and the head's."""
        b, width = batch or self.batch, self.blocks * self.units
        rows = b * self.time
        shapes = [(rows, self.features, width), (self.features, rows, width), (self.units, rows, width)]
        shapes += [(b, self.units, width)] * self.time + [(b, width, self.units)] * (self.time - 1)
        return shapes + [(b, self.units, self.classes), (self.units, b, self.classes)]

    def flops(self) -> float:
        return float(sum(2 * m * k * n for m, k, n in self.gemm_shapes(1)) * self.rows)

    def data(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((self.rows, self.time, self.features), dtype=np.float32)
        return X, rng.integers(0, self.classes, self.rows)

    def netcore_layers(self) -> list:
        from netcore.layers import GRU, LSTM, Dense, SimpleRNN

        layer = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}[self.cell]
        return [layer(self.units), Dense(self.classes, "softmax")]

    def torch_module(self, torch):
        """PyTorch's recurrent layer and a linear head on its last output."""
        recurrent = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[self.cell]

        class LastStep(torch.nn.Module):
            def __init__(self, features, units, classes):
                super().__init__()
                self.rnn = recurrent(features, units, batch_first=True)
                self.head = torch.nn.Linear(units, classes)

            def forward(self, x):
                return self.head(self.rnn(x)[0][:, -1])

        return LastStep(self.features, self.units, self.classes)

    @staticmethod
    def torch_layout(X: np.ndarray) -> np.ndarray:
        return X

    def scaled(self, rows: int | None = None, batch: int | None = None, hidden=None) -> RecurrentWorkload:
        if hidden is not None:
            raise ValueError(f"{self.name}'s widths are not scaled")
        return replace(self, batch=batch or self.batch, rows=rows or self.rows)


#: The recurrent cells W6 compares side by side.
CELLS = ("lstm", "gru", "rnn")

#: The cases of the inference workload: rows per ``predict`` call and rows per timed run.
INFERENCE_CASES = {"1-row": (1, 2_000), "10000-rows": (10_000, 30_000)}


@dataclass(frozen=True)
class InferenceWorkload(Workload):
    """``predict`` with an MLP (untrained: the cost does not depend on the weights), ``batch`` rows per call and
    ``rows // batch`` calls per timed run, reported per call; the cases (:data:`INFERENCE_CASES`) run side by side."""

    case: str = "1-row"
    #: Report time per call (the harness reads this as "per step").
    per_step: bool = True

    @property
    def cases(self) -> tuple[str, ...]:
        return tuple(INFERENCE_CASES)

    def with_case(self, case: str) -> InferenceWorkload:
        batch, rows = INFERENCE_CASES[case]
        return replace(self, case=case, batch=batch, rows=rows)

    @property
    def steps(self) -> int:
        """``predict`` calls per timed run."""
        return self.rows // self.batch

    def gemm_shapes(self, batch: int | None = None) -> list[tuple[int, int, int]]:
        """The forward products only."""
        b = batch or self.batch
        return [(b, n_in, n_out) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True)]

    def flops(self) -> float:
        return float(sum(2 * m * k * n for m, k, n in self.gemm_shapes(1)) * self.rows)

    def scaled(self, rows: int | None = None, batch: int | None = None, hidden=None) -> InferenceWorkload:
        sizes = self.sizes if hidden is None else (self.sizes[0], *hidden, self.sizes[-1])
        return replace(self, sizes=tuple(sizes), batch=batch or self.batch, rows=rows or self.rows)


WORKLOADS = {
    "W1": Workload("W1", (784, 512, 256, 10), 128, 60_000, "epoch", "cpu"),
    "W2": Workload("W2", (784, 512, 256, 10), 128, 128, "step", "gpu"),
    "W3": Workload("W3", (4096, 4096, 4096, 10), 4096, 4096, "step", "gpu"),
    "W4": ConvWorkload(  # LeNet-5
        "W4", (28, 28, 1), (Conv(6, 5, "same"), Conv(16, 5, "valid")), (120, 84), 10, 64, 60_000, "epoch", "cpu"
    ),
    "W5": ConvWorkload(
        "W5", (32, 32, 3), (Conv(64, 3), Conv(128, 3), Conv(256, 3)), (256,), 10, 256, 256, "step", "gpu"
    ),
    "W6": RecurrentWorkload("W6", "lstm", 50, 32, 128, 10, 64, 64 * 25),
    "infer": InferenceWorkload("infer", (784, 512, 256, 10), 1, 2_000, "call", "cpu"),
    "W7": ConvWorkload(  # CIFAR-shaped: convolutions wide enough that their patch products are large
        "W7",
        (32, 32, 3),
        (Conv(32, 3, pool=1), Conv(32, 3), Conv(64, 3, pool=1), Conv(64, 3)),
        (256,),
        10,
        128,
        10_000,
        "epoch",
        "cpu",
    ),
}
