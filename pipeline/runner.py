"""One ONNX Runtime session per process, configured for many processes x one thread each."""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort

from pipeline.errors import ModelError
from pipeline.repository import LoadedModel


class OnnxRunner:
    """Runs batches through a checked model on the CPU.

    The session is built from the bytes that are hashed here, so it runs exactly the graph whose
    sha256 the repository checked (the file could change between load and start). Models with
    external tensor data are therefore not supported.

    Parameters
    ----------
    model : LoadedModel
    intra_op_threads : int
        Threads inside one operator. DESIGN.md: processes x 1 thread beat fewer processes with
        more threads on this hardware, so 1 unless a deployment measured otherwise.
    """

    def __init__(self, model: LoadedModel, intra_op_threads: int = 1) -> None:
        data = model.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != model.sha256:
            raise ModelError(f"{model.path} changed after it was checked", field="sha256")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initializers are not ours to fix
        try:
            self.session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Exception subclasses (InvalidGraph)
            raise ModelError(
                f"ONNX Runtime cannot load {model.path.name} ({type(exc).__name__})", field="model"
            ) from exc
        self.card = model.card
        shape = self._input().shape
        batch_dim = shape[0] if shape else None
        # A graph exported with a fixed batch (often 1) must get exactly that many images.
        self.static_batch: int | None = batch_dim if isinstance(batch_dim, int) else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs for a batch.

        Parameters
        ----------
        batch : numpy.ndarray
            float32, ``(images, ...)`` in the card's layout and size.

        Returns
        -------
        numpy.ndarray
            The graph's floating point output, shape ``(images, labels)``.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.static_batch
        if size is None or size == len(batch):
            return self._run(batch)
        parts = []
        for start in range(0, len(batch), size):
            part = batch[start : start + size]
            if len(part) < size:  # pad the last part; the padding's outputs are dropped
                padding = np.zeros((size - len(part), *part.shape[1:]), np.float32)
                part = np.concatenate([part, padding])
            parts.append(self._run(part)[: len(batch) - start])
        return np.concatenate(parts)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.card.input.name: batch}
        raw = np.asarray(self.session.run([self.card.output.name], feed)[0])
        labels = len(self.card.output.labels)
        if raw.size != len(batch) * labels:
            raise ModelError(
                f"output shape {raw.shape} for {len(batch)} images, {labels} labels",
                field="output.labels",
            )
        return raw.reshape(len(batch), labels)

    def _input(self) -> ort.NodeArg:
        return next(i for i in self.session.get_inputs() if i.name == self.card.input.name)
