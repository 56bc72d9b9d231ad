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
    from storage.model_store import ModelStore

log = logging.getLogger(__name__)

WORKER_MODEL_ENV = "MEDFLOW_WORKER_MODEL"
# A worker serves one model; a second slot lets a chunk for another version of it (a job
# submitted before a version switch) run without evicting the active one.
MAX_MODELS = 2


class ModelCache:
    """A small LRU of Predictors keyed by ``"name:version"``.

    A ref may be pinned, ``"name:version@<sha256>"`` (what the API and the reconciler send:
    the registry's sha256 of the graph, kept by the job); a model whose graph has another
    sha256 is refused, so a changed object in the model repository is never served.
    """

    def __init__(self, settings: Settings, max_models: int = MAX_MODELS) -> None:
        self.settings = settings
        self.max_models = max_models
        self._predictors: OrderedDict[str, Predictor] = OrderedDict()
        self._repository: ModelRepository | None = None
        self._store: ModelStore | None = None

    def resolve(self, model_ref: str) -> str:
        """``"name"`` -> ``"name:<active version>"``; ``"name:version"`` is checked.

        A name or version this host has not seen yet refreshes the mirror of the model
        repository once (a version registered through the API after this worker started).
        """
        from pipeline.errors import ModelError

        ref = model_ref.partition("@")[0]
        try:
            name, version = self.repository.resolve(ref)
        except ModelError:
            self.store.refresh()
            name, version = self.repository.resolve(ref)
        return model_ref_of(name, version)

    def get(self, model_ref: str) -> Predictor:
        pinned, _, digest = model_ref.partition("@")
        expected = digest.lower() or None
        # A "name:version" already loaded is served as it is (its digest still checked below):
        # resolving it again would list the repository's directories for every chunk.
        ref = pinned if pinned in self._predictors else self.resolve(model_ref)
        predictor = self._predictors.get(ref)
        if predictor is None:
            predictor = self._load(ref, expected)
            self._predictors[ref] = predictor
            while len(self._predictors) > self.max_models:
                self._predictors.popitem(last=False)
        _check_digest(ref, predictor.model.sha256, expected)
        self._predictors.move_to_end(ref)
        return predictor

    @property
    def store(self) -> ModelStore:
        if self._store is None:
            from storage.model_store import open_model_store

            self._store = open_model_store(self.settings)
        return self._store

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            from pipeline.repository import ModelRepository

            self._repository = ModelRepository(self.store.local_root)
        return self._repository

    def _load(self, ref: str, expected: str | None) -> Predictor:
        from pipeline.errors import ModelError
        from pipeline.predict import Predictor

        name, version = ref.split(":", 1)
        self.store.ensure(name, version)
        try:
            model = self.repository.load(ref)
            _check_digest(ref, model.sha256, expected)
        except ModelError:
            # A cached copy that no longer checks out (a torn or stale file on this host): fetch
            # it once more from the repository; if that fails too, the model is refused.
            self.store.forget(name, version)
            self.store.ensure(name, version)
            model = self.repository.load(ref)
            _check_digest(ref, model.sha256, expected)
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


def _check_digest(ref: str, actual: str, expected: str | None) -> None:
    from pipeline.errors import ModelError

    if expected is not None and actual.lower() != expected:
        raise ModelError(
            f"{ref}: the repository's graph has sha256 {actual}, the registry says {expected}",
            field="sha256",
        )


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
