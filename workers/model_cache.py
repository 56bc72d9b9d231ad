"""The Predictors of one worker process, by model ref.

A Predictor owns an ONNX Runtime session, which is not fork-safe (its thread pools belong to
the process that created them): sessions are created only in the pool process that uses them,
from ``worker_process_init`` or on first use, never in the worker's parent process. This module
imports ``pipeline.predict`` (and so onnxruntime) lazily for the same reason.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import TYPE_CHECKING

from config.settings import Settings
from messages.model_ref import model_ref_of

if TYPE_CHECKING:
    from pipeline.predict import Predictor, Pseudonymize
    from pipeline.repository import ModelRepository

log = logging.getLogger(__name__)

WORKER_MODEL_ENV = "MEDFLOW_WORKER_MODEL"
# A worker serves one model; a second slot lets a chunk for another version of it (a job
# submitted before a version switch) run without evicting the active one.
MAX_MODELS = 2


class ModelCache:
    """A small LRU of Predictors keyed by ``"name:version"``."""

    def __init__(self, settings: Settings, max_models: int = MAX_MODELS) -> None:
        self.settings = settings
        self.max_models = max_models
        self._predictors: OrderedDict[str, Predictor] = OrderedDict()
        self._repository: ModelRepository | None = None

    def resolve(self, ref: str) -> str:
        """``"name"`` -> ``"name:<active version>"``; ``"name:version"`` is checked."""
        return model_ref_of(*self.repository.resolve(ref))

    def get(self, model_ref: str) -> Predictor:
        ref = self.resolve(model_ref)
        predictor = self._predictors.get(ref)
        if predictor is None:
            predictor = self._load(ref)
            self._predictors[ref] = predictor
            while len(self._predictors) > self.max_models:
                self._predictors.popitem(last=False)
        self._predictors.move_to_end(ref)
        return predictor

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            from pipeline.repository import ModelRepository

            self._repository = ModelRepository(self.settings.model_root)
        return self._repository

    def _load(self, ref: str) -> Predictor:
        from pipeline.predict import Predictor

        model = self.repository.load(ref)
        predictor = Predictor(
            model,
            self.settings.limits,
            intra_op_threads=self.settings.intra_op_threads,
            pseudonymize=_pseudonymizer(self.settings.secret_key),
            hash_images=False,  # infer_chunk sets each result's sha256 from its blob key
        )
        # The pid lets an operator (and a test) see that the session lives in a pool process.
        log.info("model %s loaded in pid %d (parent %d)", ref, os.getpid(), os.getppid())
        return predictor


def _pseudonymizer(secret: str) -> Pseudonymize:
    from privacy.pseudonym import pseudonymize

    def hook(identifiers: dict[str, str]) -> dict[str, str]:
        return pseudonymize(identifiers, secret)

    return hook


_cache: ModelCache | None = None


def process_cache(settings: Settings) -> ModelCache:
    """This process's cache (created after the fork, so never shared with a parent)."""
    global _cache
    if _cache is None:
        _cache = ModelCache(settings)
    return _cache


def preload(settings: Settings, environ: dict[str, str] | None = None) -> str | None:
    """Load the model named by MEDFLOW_WORKER_MODEL; the first chunk then pays no load time."""
    spec = (os.environ if environ is None else environ).get(WORKER_MODEL_ENV, "").strip()
    if not spec:
        return None
    cache = process_cache(settings)
    ref = cache.resolve(spec)
    cache.get(ref)
    return ref
