"""Passes over prepared device data in evaluation mode: predictions chunk by chunk, the loss of each output and the
compiled metrics (what ``evaluate`` returns and what ``fit`` logs after every epoch)."""

from __future__ import annotations

from netcore import metrics as metrics_mod


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
