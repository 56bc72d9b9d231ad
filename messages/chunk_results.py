"""The message a worker sends to ``medflow.collect``: one chunk's (or one batch's) outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messages.scored_image import ScoredImage


@dataclass(frozen=True)
class ChunkResults:
    job_id: str
    chunk_id: str  # the infer_chunk task id that produced these results
    images: tuple[ScoredImage, ...]
    # HMAC-SHA256 of the rest under the results key (messages/signing.py); empty: unsigned.
    mac: str = ""

    def to_message(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "chunk_id": self.chunk_id,
            "images": [image.to_dict() for image in self.images],
            "mac": self.mac,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ChunkResults:
        images = tuple(ScoredImage.from_dict(dict(item)) for item in message["images"])
        return cls(
            job_id=str(message["job_id"]),
            chunk_id=str(message["chunk_id"]),
            images=images,
            mac=str(message.get("mac") or ""),
        )
