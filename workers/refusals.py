"""Collect messages the collector refuses: counted in Redis, logged without their contents.

The count lives in Redis (one INCR per refusal) so that the API's ``GET /metrics`` can show it
as ``medflow_collect_refused_total`` whatever process refused the message. A refused message
writes nothing: its images stay pending and the reconciler sends them again.
"""

from __future__ import annotations

import logging
from typing import Any

from messages.chunk_results import ChunkResults
from messages.signing import chunk_authentic

log = logging.getLogger(__name__)

REFUSED_COUNTER = "medflow:metrics:collect_refused"
# The reasons, a fixed set: a metric label or a log line never carries anything from the message.
MALFORMED = "malformed"
BAD_MAC = "bad_mac"


def authentic_chunk(message: Any, key: str) -> tuple[ChunkResults | None, str | None]:
    """(the chunk, None) when the message is well formed and its MAC checks; else (None, why)."""
    try:
        chunk = ChunkResults.from_message(message)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, MALFORMED
    if not chunk_authentic(chunk, key):
        return None, BAD_MAC
    return chunk, None


def count_refusal(redis_client: Any, reason: str) -> None:
    # Logged before counting: a Redis error must not hide that a message was refused.
    log.warning("collect message refused (%s): nothing written, its images stay pending", reason)
    redis_client.incr(REFUSED_COUNTER)
