"""The authenticator on a worker-to-collector message: HMAC-SHA256 over its canonical payload.

Anyone who can put a message on the broker (an operator through Flower, any pod that reaches
Redis) could otherwise send ``medflow.collect`` with invented scores. The MAC covers the job id,
the chunk's task id, every image id and every field of every result, under
``settings.results_key``, which only the workers and the collector hold. The collector checks
it before it writes anything (workers/tasks/collect.py).

The payload is the message as JSON with sorted keys and compact separators. Both ends are Python
and the message travels as JSON, so every value (floats included) reads back as it was written
and both ends see the same bytes. A purpose string is prefixed so that a MAC made with the same
key for anything else can never stand in for this one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

from messages.chunk_results import ChunkResults

_PURPOSE = b"medflow.collect.v1\n"


def canonical_payload(chunk: ChunkResults) -> bytes:
    """What the MAC covers: the message without its ``mac``, as canonical JSON."""
    message = chunk.to_message()
    message.pop("mac", None)
    text = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _PURPOSE + text.encode("utf-8")


def results_mac(chunk: ChunkResults, key: str) -> str:
    return hmac.new(key.encode("utf-8"), canonical_payload(chunk), hashlib.sha256).hexdigest()


def sign_chunk(chunk: ChunkResults, key: str) -> ChunkResults:
    """The same chunk, carrying its MAC (what a worker sends)."""
    return replace(chunk, mac=results_mac(chunk, key))


def chunk_authentic(chunk: ChunkResults, key: str) -> bool:
    """Whether the chunk's MAC is the one ``key`` gives (constant-time comparison)."""
    return bool(chunk.mac) and hmac.compare_digest(chunk.mac, results_mac(chunk, key))
