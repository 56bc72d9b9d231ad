"""What the broker still holds: the images of every message queued or being processed.

The reconciler re-sends only what is lost. An image is in flight while an ``infer_chunk``
message naming it waits in an inference queue, while a ``medflow.collect`` message with its
result waits in the results queue, or while either was delivered and not acked yet (kombu's
``unacked`` hash; ``unacked_index`` holds each delivery's time). A delivery older than any task
can run belongs to a worker that died whole (SIGKILL, a lost host): it is put back in its queue
at once, as kombu itself would only after the visibility timeout (an hour), and it stays in
flight: the same message comes back, no second copy is made. A retry held by a live worker until
its ETA (the collector's, while Postgres is down) runs only then: its age counts from the ETA.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workers.queues import INFER_PREFIX, RESULTS_QUEUE

log = logging.getLogger(__name__)

UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
INFER_TASK = "medflow.infer_chunk"
COLLECT_TASK = "medflow.collect"


@dataclass
class InFlight:
    image_ids: set[int] = field(default_factory=set)
    restored: int = 0  # dead deliveries put back in their queue


def read_in_flight(client: Any, now: float, max_run_s: float) -> InFlight:
    """Images in flight, after putting back deliveries taken more than ``max_run_s`` ago.

    Unacked is read first (restoring the dead), then the queues, then unacked again: a message
    moving from a list to the unacked hash meanwhile is seen in one of the reads."""
    found = InFlight()
    _read_unacked(client, now, max_run_s, found)
    for queue in _queues(client):
        for raw in client.lrange(queue, 0, -1):
            found.image_ids.update(_image_ids(json.loads(raw)))
    _read_unacked(client, now, max_run_s, found)
    return found


# Atomic, so that an ack racing the restore leaves one copy at most: the HDEL decides.
_RESTORE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', ARGV[2], ARGV[3])
return 1
"""


def _queues(client: Any) -> list[bytes]:
    # kombu keeps a queue as a Redis list named after it (priority levels add a suffix).
    names = [key for key in client.scan_iter(match=f"{INFER_PREFIX}*", count=100)]
    names += [key for key in client.scan_iter(match=f"{RESULTS_QUEUE}*", count=100)]
    return [name for name in names if client.type(name) == b"list"]


def _read_unacked(client: Any, now: float, max_run_s: float, found: InFlight) -> None:
    taken = dict(client.zrange(UNACKED_INDEX, 0, -1, withscores=True))
    for tag, raw in client.hgetall(UNACKED).items():
        try:
            envelope, _exchange, queue = json.loads(raw)
        except (ValueError, TypeError):
            continue
        ids = _image_ids(envelope)
        started = max(taken.get(tag, now), _eta(envelope))
        if ids and now - started > max_run_s and _ours(queue):
            found.restored += _restore(client, tag, queue, envelope)
        found.image_ids.update(ids)


def _eta(envelope: dict[str, Any]) -> float:
    """When a delivery held for later (a retry's countdown) may start: its ``eta`` header as a
    Unix time, or 0 for a message to run at once."""
    try:
        eta = datetime.fromisoformat(envelope["headers"]["eta"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (eta if eta.tzinfo else eta.replace(tzinfo=UTC)).timestamp()


def _ours(queue: Any) -> bool:
    return isinstance(queue, str) and (queue.startswith(INFER_PREFIX) or queue == RESULTS_QUEUE)


def _restore(client: Any, tag: bytes, queue: str, envelope: dict[str, Any]) -> int:
    keys = [UNACKED, UNACKED_INDEX]
    return int(client.eval(_RESTORE, len(keys), *keys, tag, queue, json.dumps(envelope)))


def _image_ids(envelope: dict[str, Any]) -> set[int]:
    """Image ids named by one kombu message (an infer_chunk's items, a collect's results)."""
    try:
        task = envelope.get("headers", {}).get("task")
        if task not in (INFER_TASK, COLLECT_TASK):
            return set()
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        if task == INFER_TASK:
            return {int(item[0]) for item in args[2]}
        return {int(image["image_id"]) for image in args[0]["images"]}
    except (ValueError, KeyError, IndexError, TypeError):
        log.warning("an unreadable message in a queue was skipped")
        return set()
