"""Images per second, decoded from a class-per-folder set of files and trained on: netcore's
``image_dataset_from_directory`` beside PyTorch's ``DataLoader`` with worker processes over an ImageFolder-style data
set (Pillow opens, converts and resizes each file, as ``torchvision.datasets.ImageFolder`` with a ``Resize`` does),
each training the same small CNN for one epoch. Each contender runs in its own process, alternating.

``python -m benchmarks.image_folders --images 6000 --size 32``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_folder(root: str, count: int, classes: int = 10, seed: int = 0) -> None:
    """``count`` random 24x24 RGB PNG images in ``classes`` folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(count):
        folder = os.path.join(root, f"class_{k % classes}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(os.path.join(folder, f"{k}.png"))


def netcore_epoch(root: str, size: int, batch: int) -> float:
    import netcore
    from netcore.layers import Conv2D, Dense, Flatten, MaxPooling2D, Rescaling
    from netcore.utils import image_dataset_from_directory

    data = image_dataset_from_directory(root, image_size=(size, size), batch_size=batch, seed=0)
    model = netcore.Sequential(
        [Rescaling(1 / 255), Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(2), Flatten(),
         Dense(len(data.class_names), "softmax")],
        input_shape=(size, size, 3),
        device="numba",
        seed=0,
    )  # fmt: skip
    model.compile("adam", "cross_entropy")
    model.fit(data.features[0:batch], data.targets[:batch], epochs=1, verbose=0)  # compile the kernels first
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return len(data.features) / (time.perf_counter() - started)


class _Folder:
    """What ImageFolder with ``Resize((size, size))`` and ``ToTensor`` does, for the DataLoader's workers."""

    def __init__(self, root: str, size: int):
        self.items, self.size = [], size
        for label, name in enumerate(sorted(os.listdir(root))):
            folder = os.path.join(root, name)
            self.items += [(os.path.join(folder, f), label) for f in sorted(os.listdir(folder))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, k):
        import torch
        from PIL import Image

        path, label = self.items[k]
        with Image.open(path) as image:
            image = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), label


def torch_epoch(root: str, size: int, batch: int, workers: int) -> float:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = _Folder(root, size)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers)
    classes = len(os.listdir(root))
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(16 * (size // 2) ** 2, classes),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters())
    started = time.perf_counter()
    for images, labels in loader:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return len(data) / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--size", type=int, default=32, help="images are resized to size x size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="of PyTorch's DataLoader")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", choices=("netcore", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        rate = (
            netcore_epoch(args.root, args.size, args.batch)
            if args.run == "netcore"
            else torch_epoch(args.root, args.size, args.batch, args.workers)
        )
        print(json.dumps(rate))
        return 0
    with tempfile.TemporaryDirectory() as root:
        write_folder(root, args.images)
        rates = {"netcore": [], "torch": []}
        for _ in range(args.rounds):
            for name in rates:
                command = [sys.executable, "-m", "benchmarks.image_folders", "--run", name, "--root", root]
                command += ["--size", str(args.size), "--batch", str(args.batch), "--workers", str(args.workers)]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                rates[name].append(json.loads(out.strip().splitlines()[-1]))
    for name, values in rates.items():
        print(f"{name:8} {statistics.median(values):8.0f} images/s (median of {len(values)}; {values})")
    print(f"netcore / torch: {statistics.median(rates['netcore']) / statistics.median(rates['torch']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
