"""The training loop behind :meth:`netcore.models.Model.fit`: epochs, batches, callbacks, progress and Ctrl-C. It
uses the model's public surface only (its step, snapshots, buffers and scoring)."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time

from netcore import streaming
from netcore.errors import ConfigurationError, DivergenceError
from netcore.trainers.cuda_graphs import GraphedSteps

log = logging.getLogger("netcore")

#: What fit does when a batch's loss is NaN or infinite.
NONFINITE_POLICIES = ("raise", "skip_batch", "rollback", "ignore")
#: How many times "rollback" may go back and halve the learning rate before giving up.
MAX_ROLLBACKS = 3


class Progress:
    """``verbose=1``: a tqdm bar per epoch with the live loss; ``2``: one line per epoch; ``0``: silent."""

    def __init__(self, verbose: int, epochs: int, steps: int):
        if verbose not in (0, 1, 2):
            raise ConfigurationError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.bar = None

    @property
    def wants_batch_loss(self) -> bool:
        return self.verbose == 1

    def start_epoch(self, epoch: int) -> None:
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=True, dynamic_ncols=True
            )

    def batch(self, loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None and self.bar.n % 10 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def end_epoch(self, epoch: int, logs: dict) -> None:
        shown = {k: v for k, v in logs.items() if k not in ("lr", "epoch_time")}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()})
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            text = " - ".join(f"{k}: {v:.4f}" for k, v in shown.items())
            print(f"epoch {epoch + 1}/{self.epochs} - {logs['epoch_time']:.2f}s - {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def interrupt_guard():
    """Turn the first Ctrl-C during training into a flag checked between steps, so training stops at a step
    boundary with the model consistent; a second Ctrl-C interrupts at once. Only in the main thread."""
    state = {"interrupted": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if state["interrupted"]:
            raise KeyboardInterrupt
        state["interrupted"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


class _Divergence:
    """Applies the ``on_nonfinite`` policy when a batch loss is not finite."""

    def __init__(self, model, policy: str):
        self.model, self.policy = model, policy
        self.last_good = model.snapshot() if policy == "rollback" else None
        self.rollbacks = 0
        self.skipped = 0

    def epoch_done(self) -> None:
        if self.policy == "rollback":
            self.last_good = self.model.snapshot()

    def handle(self, epoch: int, step: int, loss) -> str:
        """'skip' the step, 'restart' after a rollback, or 'apply' it anyway ("ignore": PyTorch's and
        scikit-learn's behaviour, the weights may turn non-finite); raises under "raise" or when rollbacks run out."""
        model = self.model
        where = f"epoch {epoch + 1}, batch {step + 1}"
        if self.policy == "ignore":
            return "apply"
        if self.policy == "skip_batch":
            self.skipped += 1
            return "skip"
        culprit = model.first_nonfinite_gradient()
        blame = f"; first non-finite gradient: {culprit}" if culprit else " (the gradients are finite)"
        if self.policy == "raise" or self.rollbacks >= MAX_ROLLBACKS:
            tried = f" after {self.rollbacks} rollbacks" if self.policy == "rollback" else ""
            raise DivergenceError(f"loss is {loss} at {where}{tried}{blame}; lower the learning rate or check the data")
        self.rollbacks += 1
        model.restore(self.last_good)
        model.optimizer.lr = model.optimizer.lr / 2
        model.optimizer.initial_lr = model.optimizer.initial_lr / 2
        return "restart"


def _batches(model, data, batch: int, shuffle: bool, drop_partial: bool):
    """One epoch's batches as ``(xs, Ys, weights, index)``: the rows ``index`` of the (block of) data ``xs, Ys,
    weights`` (lists: one array per input and per output). Data in memory is one block, shuffled as a whole;
    streamed data is shuffled by block, then within each block (see :mod:`netcore.streaming`). ``drop_partial``
    leaves out the one batch shorter than ``batch``."""
    for xs, Ys, Ws, order in _blocks(model, *data, batch, shuffle):
        for start in range(0, order.shape[0], batch):
            index = order[start : start + batch]
            if not (drop_partial and index.shape[0] < batch):
                yield xs, Ys, Ws, index


def _blocks(model, xs, Ys, weights, batch: int, shuffle: bool):
    backend = model.backend

    def order(n: int):
        return backend.permutation(model.rng, n) if shuffle else backend.arange(n)

    streamed = [x for x in xs if streaming.is_streamed(x)]
    if not streamed:
        yield xs, Ys, weights, order(xs[0].shape[0])
        return
    block_rows = min(x.block_rows for x in streamed)
    per_block = max(batch, block_rows // batch * batch)  # whole batches: only the data's last one is short
    count = streamed[0].block_count(per_block)
    blocks = [int(k) for k in backend.to_numpy(order(count))] if count > 1 else [0]  # one block: as in memory
    for a, b, parts in streaming.blocks(xs, per_block, blocks):
        yield parts, [Y[a:b] for Y in Ys], None if weights is None else weights[a:b], order(b - a)


def _gather(model, arrays: list, index, rows: int, prefix: str) -> list:
    """The rows ``index`` of each array, in this step's reused buffers."""
    take = model.backend.take_rows
    return [take(a, index, model.batch_buffer(f"{prefix}{k}", a, rows)) for k, a in enumerate(arrays)]


def run(
    model,
    data,
    epochs: int,
    batch: int,
    shuffle: bool,
    callbacks,
    verbose: int,
    history,
    on_nonfinite="raise",
    cuda_graph: bool = False,
    parallel=None,
):
    """Train ``model`` on prepared device arrays ``data = (xs, Ys, weights, validation)`` (one array per input
    and per output); fill ``history``. ``parallel`` (a :class:`netcore.distributed.DataParallelSteps`) trains this
    rank's share of every batch."""
    xs, Ys, weights, validation = data
    # Whatever computes each step: the model itself, its recorded graphs, or its share of a distributed job.
    stepper = parallel or (GraphedSteps(model) if cuda_graph else model)
    backend, n = model.backend, xs[0].shape[0]
    several = len(model.heads) > 1
    # Batch statistics of a single row are undefined: with batch norm training, a last batch too small to give
    # every share two rows is left out of the epoch (PyTorch's drop_last for that case) rather than failing the fit.
    shares = parallel.ctx.size if parallel else 1
    drop_partial = model.normalizes_batches() and 0 < n % batch < 2 * shares and n > batch
    if drop_partial:
        log.info("fit leaves out the last batch of each epoch: too few rows for batch norm on every share")
    steps = -(-n // batch) - drop_partial
    progress = Progress(verbose, epochs, steps)
    batch_hooks = [cb for cb in callbacks if cb.wants_batches()]
    need_batch_loss = progress.wants_batch_loss or bool(batch_hooks)
    model.stop_training = False
    model.stop_reason = None
    model.active_callbacks = callbacks
    settings = {"epochs": epochs, "batch_size": batch, "steps": steps, "rows": n, "verbose": verbose}
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params(settings)
        cb.on_train_begin({})
    model.restore_callback_state(callbacks)
    divergence = _Divergence(model, on_nonfinite)
    try:
        with interrupt_guard() as interrupt:
            for epoch in range(epochs):
                started = time.perf_counter()
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                if model.schedule is not None and model.schedule.per == "epoch":
                    model.optimizer.lr = model.schedule.lr(model.optimizer.initial_lr, model.epochs_trained)
                progress.start_epoch(epoch)
                total, seen, restarted = 0.0, 0, False
                per_output = [0.0] * len(model.heads)
                batches = _batches(model, (xs, Ys, weights), batch, shuffle, drop_partial)
                for step, (block_x, block_y, Ws, index) in enumerate(batches):
                    rows = index.shape[0]
                    if parallel:
                        index = parallel.share(index, Ws)
                    mine = index.shape[0]  # the rows this process computes
                    xb = _gather(model, block_x, index, mine, "x")
                    yb = _gather(model, block_y, index, mine, "y")
                    wb = None if Ws is None else backend.take_rows(Ws, index, model.batch_buffer("w", Ws, mine))
                    for cb in batch_hooks:
                        cb.on_batch_begin(step, {})
                    loss = stepper.loss_and_gradients(xb, yb, wb)
                    if not backend.is_finite(loss):
                        # Callbacks see the bad batch first: TerminateOnNaN stops training instead of the policy.
                        for cb in batch_hooks:
                            cb.on_batch_end(step, {"loss": backend.to_float(loss), "size": rows})
                        if model.stop_training:
                            break
                        action = divergence.handle(epoch, step, backend.to_float(loss))
                        restarted = action == "restart"
                        if restarted:
                            break
                        if action == "skip":
                            continue
                    stepper.apply_gradients()
                    total = backend.accumulate(total, loss, rows)
                    if several:
                        pairs = zip(per_output, model.output_losses, strict=True)
                        per_output = [backend.accumulate(total_k, loss_k, rows) for total_k, loss_k in pairs]
                    seen += rows
                    batch_loss = backend.to_float(loss) if need_batch_loss else None
                    for cb in batch_hooks:
                        cb.on_batch_end(step, {"loss": batch_loss, "size": rows})
                    progress.batch(batch_loss)
                    if interrupt["interrupted"] or model.stop_training:
                        break
                if restarted:  # rolled back to the last good epoch: this one is abandoned
                    progress.close()
                    continue
                logs = {"loss": backend.to_float(total) / max(seen, 1)}
                if several:
                    for head, value in zip(model.heads, per_output, strict=True):
                        logs[f"{head.prefix}loss"] = backend.to_float(value) / max(seen, 1)
                if interrupt["interrupted"]:
                    history.interrupted = True
                    progress.close()
                    break
                if model.metric_names:
                    logs.update(model.training_metrics(xs, Ys))
                if validation is not None:
                    logs.update({f"val_{k}": v for k, v in model.scores(*validation).items()})
                logs["lr"] = model.optimizer.lr
                logs["epoch_time"] = time.perf_counter() - started
                model.epochs_trained += 1
                divergence.epoch_done()
                history.record(epoch, logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                progress.end_epoch(epoch, logs)
                if not math.isfinite(logs["loss"]) and model.stop_reason is None:
                    model.stop_reason = f"epoch {epoch}: loss is {logs['loss']}"
                if model.stop_training:
                    break
    finally:
        progress.close()
    for cb in callbacks:
        cb.on_train_end({})
    model.active_callbacks = None
    history.stop_reason = model.stop_reason
    history.skipped_batches = divergence.skipped
    history.rollbacks = divergence.rollbacks
    return history
