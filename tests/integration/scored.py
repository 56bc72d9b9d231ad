"""Test helper: ``(image_id, ImageResult)`` pairs as the collector's message type."""

from __future__ import annotations

from collections.abc import Iterable

from messages.scored_image import ScoredImage
from pipeline.result import ImageResult


def scored(pairs: Iterable[tuple[int, ImageResult]]) -> list[ScoredImage]:
    return [ScoredImage.from_result(image_id, result) for image_id, result in pairs]
