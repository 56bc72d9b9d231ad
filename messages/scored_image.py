"""One image's outcome as a worker reports it to the collector.

Unlike :class:`pipeline.result.ImageResult` (what ``medflow predict`` prints, keyed by the
caller's name for the image), this is keyed by the image's database id and carries the input's
sha256 (its blob key): ids, hashes and scores only, never a ref, never pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.result import FAILED, ImageResult


@dataclass(frozen=True)
class ScoredImage:
    image_id: int
    status: str  # pipeline.result.OK or FAILED
    input_sha256: str | None = None  # hex sha256 of the bytes the model saw (the blob key)
    scores: dict[str, float] = field(default_factory=dict)  # label -> probability
    positive: list[str] = field(default_factory=list)  # labels at or over their threshold
    error_code: str | None = None
    error_message: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    facts: dict[str, str | int | float] = field(default_factory=dict)  # PHI-free image facts

    @classmethod
    def from_result(cls, image_id: int, result: ImageResult) -> ScoredImage:
        return cls(
            image_id=image_id,
            status=result.status,
            input_sha256=result.sha256,
            scores=dict(result.scores),
            positive=list(result.positive),
            error_code=result.error_code,
            error_message=result.error_message,
            format=result.format,
            width=result.width,
            height=result.height,
            timings_ms=dict(result.timings_ms),
            facts=dict(result.facts),
        )

    @classmethod
    def failure(cls, image_id: int, code: str, message: str) -> ScoredImage:
        return cls(image_id, FAILED, error_code=str(code), error_message=message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoredImage:
        return cls(**data)
