"""Everything the comparison harness times, each as ``setup(workload, threads) -> run`` where ``run()`` performs one
timed unit (an epoch on the CPU, a block of steps on the GPU) and returns only when the work is done.

A contender that cannot run here raises :class:`Skip` with the reason, which the harness prints as a note.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings

import numpy as np

from benchmarks.workloads import Workload

#: GPU steps per timed block (time per step = block time / this).
GPU_BLOCK = 100


class Skip(Exception):  # noqa: N818 - it is not an error: the contender is skipped
    """This contender cannot run here; the message says why."""


def os_threads() -> int:
    """Threads NumPy's BLAS uses (PyTorch is given the same count)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
        if counts:
            return max(counts)
    except ImportError:
        pass
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------- netcore
def netcore_runner(device: str, graph: bool = False, tf32: bool = False, fit: bool = False):
    """netcore on ``device``: an epoch of ``fit`` on the CPU; on a GPU, ``GPU_BLOCK`` steps of ``train_step`` (or
    of ``compile_step``'s graph), or with ``fit=True`` the same number of steps through ``fit`` (gathers, loss
    checks and all; ``graph`` then means ``fit(cuda_graph=True)``)."""

    def setup(workload: Workload, threads: int):
        with _matmul_precision("high" if tf32 else "highest"):
            return _netcore_setup(workload, device, graph)

    def _netcore_setup(workload: Workload, device: str, graph: bool):
        import netcore

        model = _netcore_model(workload, device)
        model.compile(netcore.optimizers.Adam(lr=1e-3), "cross_entropy")
        X, y = workload.data()
        if workload.unit == "epoch":
            warm = workload.batch * 3 + workload.rows % workload.batch  # both batch sizes the epoch will see
            model.fit(X[:warm], y[:warm], epochs=1, batch_size=workload.batch, verbose=0)

            def run():
                model.fit(X, y, epochs=1, batch_size=workload.batch, verbose=0)

            return run
        backend = model.backend
        if fit:
            return _fit_steps(model, workload, graph)
        with backend.scope():
            Xd, yd, _ = model.prepare(X, y)
            step = model.compile_step(Xd, yd) if graph else (lambda: model.train_step(Xd, yd))
            if graph and not step.recorded:
                raise Skip(f"no CUDA graph: {step.reason}")
            for _ in range(10):
                step()
            backend.synchronize()

        def run():
            with backend.scope(), _matmul_precision("high" if tf32 else "highest"):
                for _ in range(GPU_BLOCK):
                    step()
                backend.synchronize()

        return run

    return setup


def _netcore_model(workload: Workload, device: str):
    """The workload's network on ``device``, or Skip if that backend cannot run here."""
    import netcore
    from backends.registry import backend_class, resolve

    reason = backend_class(resolve(device.split(":")[0]).split(":")[0]).unavailable_reason()
    if reason is not None:
        raise Skip(reason)
    return netcore.Sequential(workload.netcore_layers(), input_shape=workload.input_shape, device=device, seed=0)


def netcore_predict_runner(device: str):
    """``model.predict`` on the workload's batch, as a user calls it (default batch size, NumPy in and out)."""

    def setup(workload: Workload, threads: int):
        model = _netcore_model(workload, device)
        X = workload.data()[0]
        model.predict(X)  # warm-up: kernels compiled, buffers allocated

        def run():
            for _ in range(workload.steps):
                model.predict(X)

        return run

    return setup


def _fit_steps(model, workload: Workload, graph: bool):
    """``run()`` = ``GPU_BLOCK`` training steps through ``fit`` on data staged on the device once (under 1 GiB)."""
    sample = int(np.prod(workload.input_shape))
    cap = max(1, 2**30 // (workload.batch * sample * 4))
    per_epoch = max(d for d in range(1, GPU_BLOCK + 1) if GPU_BLOCK % d == 0 and d <= cap)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((per_epoch * workload.batch, *workload.input_shape), dtype=np.float32)
    y = rng.integers(0, workload.classes, len(X))
    backend = model.backend
    with backend.scope():
        Xd, yd, _ = model.prepare(X, y)

    def run():
        model.fit(Xd, yd, epochs=GPU_BLOCK // per_epoch, batch_size=workload.batch, verbose=0, cuda_graph=graph)
        backend.synchronize()

    run()  # warm-up: kernels compiled, buffers allocated, graphs recorded
    return run


@contextlib.contextmanager
def _matmul_precision(precision: str):
    """netcore's matmul precision for one contender only (the harness interleaves them)."""
    from backends.registry import get_matmul_precision, set_matmul_precision

    saved = get_matmul_precision()
    set_matmul_precision(precision)
    try:
        yield
    finally:
        set_matmul_precision(saved)


# ----------------------------------------------------------------------------------------------- PyTorch
def torch_runner(graph: bool = False, tf32: bool = False):
    def setup(workload: Workload, threads: int):
        try:
            import torch
        except ImportError:
            raise Skip("PyTorch is not installed (pip install torch==2.13.0)") from None
        cuda = workload.device == "gpu"
        if cuda and not torch.cuda.is_available():
            raise Skip("PyTorch sees no CUDA device")
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        dev = "cuda" if cuda else "cpu"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        net = workload.torch_module(torch).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, capturable=graph)
        loss_fn = torch.nn.CrossEntropyLoss()
        X, y = workload.data()
        Xt, yt = torch.from_numpy(workload.torch_layout(X)).to(dev), torch.from_numpy(y).to(dev)

        def step(xb, yb):
            opt.zero_grad(set_to_none=not graph)
            loss_fn(net(xb), yb).backward()
            opt.step()

        if not cuda:

            def run():
                order = torch.randperm(workload.rows)
                for start in range(0, workload.rows, workload.batch):
                    index = order[start : start + workload.batch]
                    step(Xt[index], yt[index])

            step(Xt[: workload.batch], yt[: workload.batch])
            return run
        if graph:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    step(Xt, yt)
            torch.cuda.current_stream().wait_stream(side)
            captured = torch.cuda.CUDAGraph()
            with torch.cuda.graph(captured):
                step(Xt, yt)
            one = captured.replay
        else:
            for _ in range(5):
                step(Xt, yt)
            one = lambda: step(Xt, yt)  # noqa: E731

        def run():
            for _ in range(GPU_BLOCK):
                one()
            torch.cuda.synchronize()

        return run

    return setup


def torch_predict_runner(workload: Workload, threads: int):
    """PyTorch's module with a softmax under ``inference_mode``, NumPy in and out, as a serving loop calls it."""
    try:
        import torch
    except ImportError:
        raise Skip("PyTorch is not installed (pip install torch==2.13.0)") from None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch.nn.Sequential(workload.torch_module(torch), torch.nn.Softmax(dim=1)).eval()
    X = workload.torch_layout(workload.data()[0])

    def run():
        with torch.inference_mode():
            for _ in range(workload.steps):
                net(torch.from_numpy(X)).numpy()

    run()
    return run


# ----------------------------------------------------------------------------------------------- baselines
def plain_predict_runner(workload: Workload, threads: int):
    """The MLP's forward pass written the obvious way in NumPy: products, bias, ReLU, softmax."""
    rng = np.random.default_rng(0)
    sizes = workload.sizes
    layers = [
        ((rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32), np.zeros(b, np.float32))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    X = workload.data()[0]

    def predict(x):
        for w, b in layers[:-1]:
            x = np.maximum(x @ w + b, 0)
        z = x @ layers[-1][0] + layers[-1][1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def run():
        for _ in range(workload.steps):
            predict(X)

    return run


def plain_array_runner(xp_name: str):
    """The same training written the obvious way with NumPy (or CuPy) expressions: what a user writes by hand."""

    def setup(workload: Workload, threads: int):
        if not workload.is_mlp:
            raise Skip("the hand-written baseline is an MLP")
        if xp_name == "cupy":
            from backends.registry import backend_class

            reason = backend_class("cupy").unavailable_reason()
            if reason is not None:
                raise Skip(reason)
            import cupy as xp
        else:
            xp = np
        rng = np.random.default_rng(0)
        sizes = workload.sizes
        weights = [
            xp.asarray((rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        biases = [xp.zeros(b, np.float32) for b in sizes[1:]]
        params = weights + biases
        moments = [[xp.zeros_like(p) for p in params] for _ in range(2)]
        X, y = (xp.asarray(a) for a in workload.data())
        state = {"t": 0}

        def step(xb, yb):
            acts = [xb]
            for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
                z = acts[-1] @ w + b
                acts.append(xp.maximum(z, 0) if i < len(weights) - 1 else z)
            z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
            g = xp.exp(z)
            g /= g.sum(axis=1, keepdims=True)
            g[xp.arange(len(yb)), yb] -= 1
            g /= len(yb)
            grads_w, grads_b = [None] * len(weights), [None] * len(weights)
            for i in reversed(range(len(weights))):
                grads_w[i], grads_b[i] = acts[i].T @ g, g.sum(axis=0)
                if i:
                    g = (g @ weights[i].T) * (acts[i] > 0)
            state["t"] += 1
            t = state["t"]
            for p, gr, m, v in zip(params, grads_w + grads_b, *moments, strict=True):
                m *= 0.9
                m += 0.1 * gr
                v *= 0.999
                v += 0.001 * gr * gr
                p -= 1e-3 * (m / (1 - 0.9**t)) / (xp.sqrt(v / (1 - 0.999**t)) + 1e-8)

        if workload.unit == "epoch":

            def run():
                order = rng.permutation(workload.rows)
                for start in range(0, workload.rows, workload.batch):
                    index = order[start : start + workload.batch]
                    step(X[index], y[index])

            return run

        def run():
            for _ in range(GPU_BLOCK):
                step(X, y)
            xp.cuda.Device().synchronize()

        return run

    return setup


def sklearn_runner(workload: Workload, threads: int):
    if workload.device != "cpu":
        raise Skip("scikit-learn runs on the CPU only")
    if not workload.is_mlp:
        raise Skip("scikit-learn has no convolutional networks")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = workload.data()

    def run():
        clf = MLPClassifier(
            hidden_layer_sizes=workload.sizes[1:-1],
            solver="adam",
            learning_rate_init=1e-3,
            batch_size=workload.batch,
            max_iter=1,
            shuffle=True,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)

    return run


# ----------------------------------------------------------------------------------------------- the floor
def gemm_at_shapes_runner(workload: Workload, threads: int):
    """Only the workload's matrix products, with preallocated outputs: the cost no implementation can avoid."""
    xp = array_module(workload)
    rng = np.random.default_rng(0)
    operands = [
        (
            xp.asarray(rng.standard_normal((m, k), dtype=np.float32)),
            xp.asarray(rng.standard_normal((k, n), dtype=np.float32)),
            xp.empty((m, n), np.float32),
        )
        for m, k, n in workload.gemm_shapes()
    ]
    steps = workload.steps if workload.device == "cpu" else GPU_BLOCK

    def run():
        for _ in range(steps):
            for a, b, out in operands:
                xp.matmul(a, b, out=out)
        _sync(xp)

    return run


def square_gemm_rate(workload: Workload, size: int | None = None, repeats: int = 10) -> float:
    """FLOP/s of a large square float32 matrix product on the workload's device."""
    xp = array_module(workload)
    size = size or (2048 if workload.device == "cpu" else 8192)
    a = xp.asarray(np.random.default_rng(0).standard_normal((size, size), dtype=np.float32))
    out = xp.empty_like(a)
    xp.matmul(a, a, out=out)
    _sync(xp)
    started = time.perf_counter()
    for _ in range(repeats):
        xp.matmul(a, a, out=out)
    _sync(xp)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def array_module(workload: Workload):
    """NumPy or CuPy, whichever runs the workload's device; :class:`Skip` when CuPy cannot run here."""
    if workload.device == "cpu":
        return np
    from backends.registry import backend_class

    reason = backend_class("cupy").unavailable_reason()
    if reason is not None:
        raise Skip(reason)
    import cupy

    return cupy


def _sync(xp) -> None:
    if xp is not np:
        xp.cuda.Device().synchronize()
