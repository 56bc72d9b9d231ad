"""Bytes -> results for a stream of images: decode, preprocess, batch, run, postprocess.

One image's failure is that image's result row (``status="failed"`` and an error code), never
an exception for the others; a failed batch fails only the images in it. Interruptions (Ctrl-C,
a Celery time limit) are not failures of an image and pass through.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from time import perf_counter

import numpy as np

from pipeline.card import ModelCard
from pipeline.decode import decode_image, is_interruption
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage
from pipeline.limits import ImageLimits
from pipeline.postprocess import positive_labels, scores_from_logits
from pipeline.preprocess import preprocess
from pipeline.repository import LoadedModel
from pipeline.result import FAILED, OK, ImageResult
from pipeline.runner import OnnxRunner

log = logging.getLogger(__name__)

# Raw identifiers (patient id, study and SOP instance UIDs) -> PHI-free facts, e.g. keyed
# pseudonyms {"patient_pseudonym": ...}. The raw values never reach a result.
Pseudonymize = Callable[[dict[str, str]], dict[str, str]]

PENDING = "pending"  # prepared, waiting for its batch; never returned
INTERNAL_MESSAGE = "internal error while processing the image"
DEFAULT_LIMITS = ImageLimits()


class Predictor:
    """Scores images with one model; holds the session and a reused batch buffer.

    Not thread-safe (the batch buffer is shared): use one per thread or process.

    Parameters
    ----------
    model : LoadedModel
    limits : ImageLimits
        Checked by the decoder before pixels are decoded.
    intra_op_threads : int
        ONNX Runtime threads per operator (see :class:`pipeline.runner.OnnxRunner`).
    pseudonymize : callable, optional
        Turns the decoder's raw identifiers into facts for the result (e.g. keyed pseudonyms);
        without it no identifier-derived fact is produced at all.
    hash_images : bool
        Fill ``result.sha256``. Hashing 8 MB costs about 10 ms here, more than preprocessing;
        a caller that already knows the digest (blob keys are content sha256) passes False and
        sets it itself.
    """

    def __init__(
        self,
        model: LoadedModel,
        limits: ImageLimits = DEFAULT_LIMITS,
        intra_op_threads: int = 1,
        pseudonymize: Pseudonymize | None = None,
        *,
        hash_images: bool = True,
    ) -> None:
        self.model = model
        self.limits = limits
        self.runner = OnnxRunner(model, intra_op_threads)
        self.pseudonymize = pseudonymize
        self.hash_images = hash_images
        spec = model.card.input
        shape = (spec.channels, spec.height, spec.width)
        if spec.layout == "NHWC":
            shape = (spec.height, spec.width, spec.channels)
        # Preprocessing writes straight into rows of this buffer: no per-image tensor or
        # per-batch stack is allocated (DESIGN.md: allocations cost page faults).
        self._batch = np.empty((model.card.batch_size, *shape), np.float32)

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def predict(self, items: Iterable[tuple[str, bytes]]) -> list[ImageResult]:
        """One result per ``(ref, bytes)`` item, in input order."""
        results: list[ImageResult] = []
        pending: list[ImageResult] = []
        for ref, data in items:
            result = self._prepare(ref, data, self._batch[len(pending)])
            results.append(result)
            if result.status == PENDING:
                pending.append(result)
            if len(pending) == len(self._batch):
                self._infer(pending)
                pending = []
        if pending:
            self._infer(pending)
        return results

    def predict_one(self, ref: str, data: bytes) -> ImageResult:
        return self.predict([(ref, data)])[0]

    def _prepare(self, ref: str, data: bytes, row: np.ndarray) -> ImageResult:
        """Hash, decode and preprocess one image into ``row``; PENDING or FAILED."""
        started = perf_counter()
        result = ImageResult(ref=ref, status=PENDING)
        stage = "hash"
        try:
            if self.hash_images:
                result.sha256 = hashlib.sha256(data).hexdigest()
            stage = "decode"
            begun = perf_counter()
            spec = self.card.input
            image = decode_image(
                data,
                self.limits,
                draft_size=(spec.height, spec.width),
                reduce_jpeg2000=self.card.preprocess.reduced_jpeg2000_tolerance is not None,
            )
            result.timings_ms["decode"] = _ms(begun)
            self._describe(result, image)
            stage = "preprocess"
            begun = perf_counter()
            preprocess(image, self.card, out=row)
            result.timings_ms["preprocess"] = _ms(begun)
        except ImageError as exc:
            _fail(result, exc.code, exc.message)
        except Exception as exc:
            _reraise_interruption(exc)
            # The type only: messages from decoders can quote header values (PHI).
            log.error("%s failed with %s", stage, type(exc).__name__)
            _fail(result, ErrorCode.INTERNAL_ERROR, INTERNAL_MESSAGE)
        result.timings_ms["total"] = _ms(started)
        return result

    def _describe(self, result: ImageResult, image: DecodedImage) -> None:
        result.format = str(image.format)
        result.width = image.width
        result.height = image.height
        result.facts = dict(image.facts)
        if self.pseudonymize is not None and image.identifiers:
            result.facts.update(self.pseudonymize(dict(image.identifiers)))

    def _infer(self, pending: list[ImageResult]) -> None:
        """Run the first ``len(pending)`` rows of the batch buffer; fill or fail each result."""
        started = perf_counter()
        output = self.card.output
        try:
            raw = self.runner.run(self._batch[: len(pending)])
            scores = scores_from_logits(raw, output)
        except Exception as exc:
            _reraise_interruption(exc)
            log.error("inference of %d images failed with %s", len(pending), type(exc).__name__)
            scores = None
        share = _ms(started) / len(pending)
        for index, result in enumerate(pending):
            result.timings_ms["inference"] = share
            result.timings_ms["total"] = round(result.timings_ms["total"] + share, 3)
            if scores is None:
                _fail(result, ErrorCode.INFERENCE_FAILED, "the model failed on this image's batch")
            elif not np.isfinite(list(scores[index].values())).all():
                _fail(result, ErrorCode.INFERENCE_FAILED, "the model produced a non-finite score")
            else:
                result.status = OK
                result.scores = scores[index]
                result.positive = positive_labels(scores[index], output)


def _fail(result: ImageResult, code: ErrorCode, message: str) -> None:
    result.status = FAILED
    result.error_code = str(code)
    result.error_message = message


def _reraise_interruption(exc: Exception) -> None:
    """Celery's time limits are Exceptions: let them (and other interruptions) through."""
    if is_interruption(exc):
        raise exc


def _ms(since: float) -> float:
    return round((perf_counter() - since) * 1000.0, 3)
