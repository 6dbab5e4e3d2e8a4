"""The time of one training step of small networks, where the engine's own overhead (the Python around the kernels)
is a large part of the step, and of W1's network, where the matrix products dominate.

``python -m benchmarks.steps`` measures the netcore it imports. ``--against DIR`` compares it with another source
tree of netcore (a checkout of an older commit): rounds alternate between the two, each in a fresh process, so both
see the same machine, and the medians and their ratio are printed (ratio > 1: this tree is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

#: name -> (hidden widths, input width, outputs, batch, loss); the output layer is sigmoid for one output.
NETWORKS = {
    "moons 2-16-1, batch 32": ((16,), 2, 1, 32, "binary_cross_entropy"),
    "digits 64-128-64-10, batch 64": ((128, 64), 64, 10, 64, "cross_entropy"),
    "W1 784-512-256-10, batch 128": ((512, 256), 784, 10, 128, "cross_entropy"),
}


def _data(features: int, outputs: int, rows: int, seed: int = 0):
    """The real set where there is one at this width (moons, digits), else random rows as W1's."""
    from sklearn.datasets import load_digits, make_moons

    rng = np.random.default_rng(seed)
    if features == 2:
        X, y = make_moons(rows, noise=0.2, random_state=seed)
        return X.astype("float32"), y.reshape(-1, 1).astype("float32")
    if features == 64:
        digits = load_digits()
        return (digits.data / 16).astype("float32"), digits.target
    return rng.standard_normal((rows, features)).astype("float32"), rng.integers(0, outputs, rows)


def step_time(name: str, device: str, steps: int) -> float:
    """Median seconds per ``train_step`` over ``steps`` consecutive batches (after warming up)."""
    import netcore
    from netcore.layers import Dense

    hidden, features, outputs, batch, loss = NETWORKS[name]
    layers = [Dense(width, "relu") for width in hidden] + [Dense(outputs, "sigmoid" if outputs == 1 else "softmax")]
    model = netcore.Sequential(layers, input_dim=features, device=device, seed=0)
    model.compile("adam", loss)
    X, y = _data(features, outputs, max(batch * 8, 1000))
    prepare = getattr(model, "prepare", None) or model._prepare  # older trees name it privately
    Xd, yd = prepare(X, y)[:2]
    starts = range(0, Xd.shape[0] - batch + 1, batch)
    batches = [(Xd[a : a + batch], yd[a : a + batch]) for a in starts]
    for xb, yb in batches[:5]:
        model.train_step(xb, yb)
    times = []
    for k in range(steps):
        xb, yb = batches[k % len(batches)]
        started = time.perf_counter()
        model.backend.to_float(model.train_step(xb, yb))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(device: str, steps: int) -> dict:
    return {name: step_time(name, device, steps if "W1" not in name else max(steps // 20, 20)) for name in NETWORKS}


def _child(tree: str, device: str, steps: int) -> dict:
    """This file run as a script in a fresh process that imports netcore from ``tree``."""
    env = {**os.environ, "PYTHONPATH": tree}
    command = [sys.executable, os.path.abspath(__file__), "--device", device, "--steps", str(steps), "--json"]
    out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(other: str, device: str, steps: int, rounds: int) -> dict:
    """Medians over ``rounds`` alternating runs of this tree and ``other``, and their ratios."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = {"this": [], "other": []}
    for _ in range(rounds):
        runs["this"].append(_child(here, device, steps))
        runs["other"].append(_child(other, device, steps))
    result = {}
    for name in NETWORKS:
        this = statistics.median(run[name] for run in runs["this"])
        that = statistics.median(run[name] for run in runs["other"])
        result[name] = {"this_us": this * 1e6, "other_us": that * 1e6, "ratio": this / that}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="numba")
    parser.add_argument("--steps", type=int, default=400, help="timed steps per small network (W1: a 20th)")
    parser.add_argument("--against", help="another netcore source tree to compare with, alternating")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.against:
        result = compare(args.against, args.device, args.steps, args.rounds)
        if args.json:
            print(json.dumps(result))
        for name, row in result.items():
            print(f"{name:32} {row['this_us']:9.1f} us  vs {row['other_us']:9.1f} us  ratio {row['ratio']:.3f}")
        return 0
    result = measure(args.device, args.steps)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v * 1e6:.1f} us" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
