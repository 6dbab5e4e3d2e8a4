"""Passes in evaluation mode: ``evaluate``, ``predict`` and the forward pass, and under them predictions chunk by
chunk, the loss of each output and the compiled metrics (what ``fit`` also logs after every epoch)."""

from __future__ import annotations

import time

from netcore import metrics as metrics_mod
from netcore import streaming, validation
from netcore.trainers import data


class Scoring:
    """Mixed into :class:`netcore.trainers.Trainer`; uses the model's executor, heads and batch buffers."""

    def _loss_rows(self, out, Y, weights, mask, index: int):
        """The output, targets and weights as rows of the loss: one per sample, or one per step (pixel) when the
        output has more axes; per-sample weights repeated over the steps, masked steps weighted 0 (views and a
        reused buffer, no copies)."""
        if out.ndim == 2:
            return out, Y, weights
        rows = out.reshape(-1, out.shape[-1])
        targets = Y.reshape(-1) if Y.ndim == out.ndim - 1 else Y.reshape(-1, out.shape[-1])
        if weights is None and mask is None:
            return rows, targets, None
        spread = self.batch_buffer(f"row weights {index}", rows[:, :1], rows.shape[0]).reshape(out.shape[0], -1)
        spread[...] = 1 if weights is None else weights.reshape(out.shape[0], -1)
        if mask is not None:
            spread *= mask.reshape(out.shape[0], -1)
        return rows, targets, spread.reshape(-1)

    def predict_native(self, xs: list, batch_size: int = 1024, logits: bool = False) -> list:
        """Device outputs for the inputs ``xs`` in evaluation mode, ``(n, *output_shape)`` each (logits for fused
        outputs where ``logits``); each output's mask over time steps, if any, is left in
        :attr:`predicted_masks`."""
        n = xs[0].shape[0]
        outs = [self.backend.empty((n, *shape), self.dtype) for shape in self.output_shapes]
        masks = [None] * len(outs)
        for start, parts in self.chunks(xs, batch_size):
            results = self._executor.forward(parts, False, logits)
            stop = start + parts[0].shape[0]
            for k, (result, mask) in enumerate(zip(results, self._executor.output_masks, strict=True)):
                outs[k][start:stop] = result
                if mask is not None:
                    if masks[k] is None:
                        masks[k] = self.backend.empty((n, *mask.shape[1:]), "bool")
                    masks[k][start:stop] = mask
        self.predicted_masks = masks
        return outs

    def _head_metrics(self, head, pred, targets, mask) -> dict:
        """Every metric of ``head`` over the rows of its loss (masked steps left out)."""
        pred, targets, _ = self._loss_rows(pred, targets, None, None, head.index)
        if mask is not None:
            kept = mask.reshape(-1)
            pred, targets = pred[kept], targets[kept]
        return {head.prefix + name: metrics_mod.get(name)(self.backend, pred, targets) for name in head.metric_names}

    def training_metrics(self, xs: list, Ys: list) -> dict:
        """The compiled metrics over prepared data, in evaluation mode (fit's per-epoch metrics)."""
        results: dict = {}
        for head, out, Y, mask in zip(self.heads, self.predict_native(xs), Ys, self.predicted_masks, strict=True):
            results.update(self._head_metrics(head, out, Y, mask))
        return results

    def scores(self, xs: list, Ys: list, batch_size: int = 1024) -> dict:
        """``{"loss": ..., per-output losses, metrics}`` over prepared data (what evaluate reports)."""
        raws = self.predict_native(xs, batch_size, logits=True)
        total, losses, metrics = 0.0, {}, {}
        for head, raw, Y, mask in zip(self.heads, raws, Ys, self.predicted_masks, strict=True):
            rows, targets, weights = self._loss_rows(raw, Y, None, mask, head.index)
            grad = self.backend.empty(rows.shape, rows.dtype)
            loss = self.backend.to_float(head(self.backend, rows, targets, grad, weights))
            total += loss
            losses[f"{head.prefix}loss"] = loss
            pred = head.activation(self.backend, rows) if head.fused else rows
            metrics.update(self._head_metrics(head, pred, targets, mask))
        results = {"loss": total}
        if len(self.heads) > 1:
            results.update(losses)
        results.update(metrics)
        return results

    def evaluate(self, X, y=None, batch_size: int = 1024, verbose: int = 0, return_dict: bool = False):
        """What Keras returns: the loss (mean over ``X``) as a float for a model with one output and no metrics,
        else the list ``[loss, *per-output losses, *metrics]`` (names in :meth:`score_names`); with
        ``return_dict=True`` a dict ``{"loss": ..., "accuracy": ...}``. ``verbose=1`` prints them."""
        data.check_positive_int("batch_size", batch_size)
        X, y = data.unpack(X, y)
        with self._guarded(mutates=False):
            xs, Ys, _ = self._prepare(X, y, stream=True)
            scores = self.scores(xs, Ys, batch_size)
        if verbose:
            print(" - ".join(f"{name}: {value:.4f}" for name, value in scores.items()))
        if return_dict:
            return scores
        values = list(scores.values())
        return values[0] if len(values) == 1 else values

    def score_names(self) -> list[str]:
        """The names of what :meth:`evaluate` returns, in order (``loss``, per-output losses, metrics)."""
        several = [f"{head.prefix}loss" for head in self.heads] if len(self.heads) > 1 else []
        return ["loss", *several, *self.metric_names]

    def predict(self, X, batch_size: int = 1024, verbose: int = 0):
        """The model's outputs (probabilities after softmax/sigmoid) for ``X``, as a NumPy array; a list of them
        for several outputs (a dict where the outputs were given as one). ``verbose=1`` prints how many rows took
        how long."""
        data.check_positive_int("batch_size", batch_size)
        started = time.perf_counter() if verbose else 0.0
        with self._guarded(mutates=False):
            xs = self._prediction_inputs(X)
            if xs[0].shape[0] <= batch_size and not any(map(streaming.is_streamed, xs)):
                raw = self._executor.forward(xs, False)  # one chunk: no output buffer to assemble it in
            else:
                raw = self.predict_native(xs, batch_size)
            outs = [self.backend.to_numpy(out).copy() for out in raw]
        if verbose:
            print(f"predicted {len(outs[0])} rows in {time.perf_counter() - started:.3f}s")
        if len(outs) == 1:
            return outs[0]
        return dict(zip(self._output_keys, outs, strict=True)) if self._output_keys else outs

    def _prediction_inputs(self, X) -> list:
        """The checked inputs of a prediction. An array a built model of one input computes on as it is (its
        backend's array type, dtype, sample shape; a predict serving one request) has only its values checked: the
        general preparation's dozen Python calls cost as much as the products of a small network's row."""
        if self._served_shape is not None and validation.ready(self.backend, X, self.dtype, self._served_shape):
            return [validation.finite(self.backend, X, "X")]
        X = X.features if data.is_data_set(X) else X
        return self._prepare(X, need_targets=False, stream=True)[0]

    def predict_proba(self, X, batch_size: int = 1024, verbose: int = 0):
        """Class probabilities (the outputs of a model ending in softmax or sigmoid)."""
        return self.predict(X, batch_size, verbose)

    def predict_classes(self, X, batch_size: int = 1024, verbose: int = 0):
        """Predicted class indices: argmax of the outputs' last axis, or ``output >= 0.5`` for one sigmoid output
        (per step for sequence outputs)."""
        out = self.predict(X, batch_size, verbose)
        return (out[..., 0] >= 0.5).astype("int64") if out.shape[-1] == 1 else out.argmax(axis=-1)

    def forward(self, X):
        """Forward pass in the current mode (:meth:`train` / :meth:`eval`), returning native arrays (a list for
        several outputs)."""
        with self._guarded(mutates=self.training):
            xs, _, _ = self._prepare(X, need_targets=False)
            outs = self._executor.forward(xs, self.training)
            return outs[0] if len(outs) == 1 else outs

    @staticmethod
    def chunks(xs: list, size: int):
        """``(start, rows)`` for consecutive chunks of ``size`` rows of the inputs ``xs`` (one list per chunk;
        streamed data block by block)."""
        if not any(streaming.is_streamed(x) for x in xs):
            for start in range(0, xs[0].shape[0], size):
                yield start, [x[start : start + size] for x in xs]
            return
        block_rows = min(x.block_rows for x in xs if streaming.is_streamed(x))
        for first, _, parts in streaming.blocks(xs, max(size, block_rows // size * size)):
            for start in range(0, parts[0].shape[0], size):
                yield first + start, [part[start : start + size] for part in parts]
