"""Queue names: one inference queue per model, one results queue for the collector."""

from __future__ import annotations

RESULTS_QUEUE = "results"
# Unrouted tasks land here, not in Celery's "celery" queue: no MedFlow worker consumes it, so a
# routing bug shows up as a growing queue in Flower instead of a task run by the wrong pool.
DEFAULT_QUEUE = "medflow.unrouted"
INFER_PREFIX = "infer."
PRIORITY_SUFFIX = ".priority"


def infer_queue(model_name: str) -> str:
    """The queue served by the workers of one model (``celery worker -Q infer.<name>``)."""
    return f"{INFER_PREFIX}{model_name}"


def priority_queue(model_name: str) -> str:
    """The interactive lane of one model: its workers drain it before ``infer_queue``."""
    return f"{INFER_PREFIX}{model_name}{PRIORITY_SUFFIX}"


def lane_queue(model_name: str, interactive: bool) -> str:
    return priority_queue(model_name) if interactive else infer_queue(model_name)


def worker_queues(model_name: str) -> str:
    """``celery worker -Q`` of a model's workers (workers/queue_order.py asks for the priority
    queue first whatever the order here)."""
    return f"{priority_queue(model_name)},{infer_queue(model_name)}"


def model_name_of(model_ref: str) -> str:
    """``"name:version"`` or ``"name"`` -> ``"name"``."""
    return model_ref.split(":", 1)[0]
