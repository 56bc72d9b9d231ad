"""How a model version is named in tasks, the model cache, the API and the audit."""

from __future__ import annotations


def model_ref_of(name: str, version: str) -> str:
    """``"name:version"`` (``workers.queues.model_name_of`` reads the name back)."""
    return f"{name}:{version}"
