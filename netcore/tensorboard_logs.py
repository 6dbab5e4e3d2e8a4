"""``callbacks.TensorBoard``: training written as TensorBoard event files (the optional extra ``tensorboard``), to
watch with ``tensorboard --logdir logs``.

As Keras lays them out: ``log_dir/train`` holds the training scalars, ``log_dir/validation`` the validation ones
under the same tags (so TensorBoard draws them on one chart): ``epoch_loss``, ``epoch_accuracy``, ...,
``epoch_learning_rate`` and ``epoch_seconds``; ``batch_loss`` every ``update_freq`` batches. Every ``histogram_freq``
epochs, each parameter's values (``layer/param``) and its gradient from the epoch's last batch
(``layer/param/gradient``); with ``write_graph``, the model's summary as text (``model/summary``). Events are
written with TensorBoard's own event-file writer and protocol buffers; nothing of TensorFlow is needed.
"""

from __future__ import annotations

import os
import time

import numpy as np

from netcore.callbacks import LogWriter
from netcore.errors import BackendUnavailableError, ConfigurationError

#: Histogram buckets per parameter (TensorBoard re-bins them for display).
BUCKETS = 30


def _tensorboard():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise BackendUnavailableError(
            f"callbacks.TensorBoard needs the tensorboard package ({exc}); install it with: "
            "pip install 'netcore-nn[tensorboard]'"
        ) from None
    return EventFileWriter, event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2


class TensorBoard(LogWriter):
    """Scalars, histograms and the model as text for TensorBoard (Keras's callback and arguments).

    ``update_freq``: ``"epoch"`` (scalars once per epoch), ``"batch"`` (also the loss of every batch) or an integer
    ``N`` (the loss every ``N`` batches; reading a batch's loss waits for the device). ``histogram_freq``: every how
    many epochs to write weight and gradient histograms (0: never).
    """

    def __init__(self, log_dir="logs", update_freq="epoch", histogram_freq: int = 0, write_graph: bool = True):
        super().__init__()
        self._modules = _tensorboard()
        if update_freq not in ("epoch", "batch") and not (
            isinstance(update_freq, int) and not isinstance(update_freq, bool) and update_freq > 0
        ):
            raise ConfigurationError(f"update_freq must be 'epoch', 'batch' or a positive integer, got {update_freq!r}")
        if not isinstance(histogram_freq, int) or isinstance(histogram_freq, bool) or histogram_freq < 0:
            raise ConfigurationError(f"histogram_freq must be a non-negative integer, got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self.histogram_freq = histogram_freq
        self.write_graph = bool(write_graph)
        self.writers: dict = {}
        self.step = 0  # batches seen, across fits

    def wants_batches(self) -> bool:
        return self.update_freq != "epoch"

    # ----------------------------------------------------------------- events
    def _writer(self, run: str):
        if run not in self.writers:
            EventFileWriter = self._modules[0]
            self.writers[run] = EventFileWriter(os.path.join(self.log_dir, run))
        return self.writers[run]

    def _write(self, run: str, step: int, values) -> None:
        _, event_pb2, summary_pb2, *_ = self._modules
        event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values))
        self._writer(run).add_event(event)

    def _scalar(self, tag: str, value: float):
        return self._modules[2].Summary.Value(tag=tag, simple_value=float(value))

    def _histogram(self, tag: str, values: np.ndarray):
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            values = np.zeros(1)
        low, high = float(values.min()), float(values.max())
        counts, edges = np.histogram(values, bins=BUCKETS, range=(low, high) if high > low else (low - 0.5, low + 0.5))
        proto = self._modules[2].HistogramProto(
            min=low,
            max=high,
            num=float(values.size),
            sum=float(values.sum()),
            sum_squares=float(np.dot(values, values)),
            bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts],
        )
        return self._modules[2].Summary.Value(tag=tag, histo=proto)

    def _text(self, tag: str, text: str):
        _, _, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2 = self._modules
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            string_val=[text.encode()],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]),
        )
        return summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        if self.write_graph:
            # Markdown: indented lines keep the table's columns.
            text = "\n".join("    " + line for line in self.model.summary(print_fn=None).splitlines())
            self.safely("write the model summary", self._write, "train", 0, [self._text("model/summary", text)])

    def on_batch_end(self, batch, logs=None):
        self.step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and self.step % self.update_freq == 0:
            self.safely("write the batch loss", self._write, "train", self.step, [self._scalar("batch_loss", loss)])

    def on_epoch_end(self, epoch, logs=None):
        epoch = self.model.epochs_trained - 1  # counted across fits, so a resumed model continues its curves
        train, validation = [], []
        for key, value in (logs or {}).items():
            if not isinstance(value, (int, float)):
                continue
            name = {"lr": "learning_rate", "epoch_time": "seconds"}.get(key, key)
            if name.startswith("val_"):
                validation.append(self._scalar(f"epoch_{name[4:]}", value))
            else:
                train.append(self._scalar(f"epoch_{name}", value))
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            train += self.safely("read the weights", self._histograms) or []
        self.safely("write the epoch's scalars", self._write, "train", epoch, train)
        if validation:
            self.safely("write the epoch's validation scalars", self._write, "validation", epoch, validation)
        self.safely("flush the event files", self._flush)

    def _histograms(self) -> list:
        model = self.model
        names = model.leaf_names()
        values = []
        for layer, spec in model.buffers.specs:
            where = f"{names[id(layer)]}/{spec.name}"
            values.append(self._histogram(where, model.backend.to_numpy(layer.params[spec.name])))
            if layer.trainable:
                values.append(self._histogram(f"{where}/gradient", model.backend.to_numpy(layer.grads[spec.name])))
        return values

    def _flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        self.safely("close the event files", self.close)

    def close(self) -> None:
        """Flush and close the event files (the next fit opens new ones)."""
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()
