"""The outcome for one image: what a worker sends to the collector and `medflow predict` prints.

It is plain JSON-able data (it travels in a Celery message): scores and timings, never pixels,
never raw DICOM identifiers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
FAILED = "failed"


@dataclass
class ImageResult:
    ref: str  # the caller's name for the image (upload file name, URI, or path)
    status: str  # OK or FAILED
    sha256: str | None = None  # of the input bytes, hex
    error_code: str | None = None
    error_message: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # label -> probability
    positive: list[str] = field(default_factory=list)  # labels at or over their threshold
    format: str | None = None
    width: int | None = None
    height: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    facts: dict[str, str | int | float] = field(default_factory=dict)  # PHI-free image facts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageResult:
        return cls(**data)
