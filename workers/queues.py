"""Queue names: one inference queue per model, one results queue for the collector."""

from __future__ import annotations

RESULTS_QUEUE = "results"
# Unrouted tasks land here, not in Celery's "celery" queue: no MedFlow worker consumes it, so a
# routing bug shows up as a growing queue in Flower instead of a task run by the wrong pool.
DEFAULT_QUEUE = "medflow.unrouted"
INFER_PREFIX = "infer."


def infer_queue(model_name: str) -> str:
    """The queue served by the workers of one model (``celery worker -Q infer.<name>``)."""
    return f"{INFER_PREFIX}{model_name}"


def model_name_of(model_ref: str) -> str:
    """``"name:version"`` or ``"name"`` -> ``"name"``."""
    return model_ref.split(":", 1)[0]
