"""The beat that sends ``medflow.reconcile``: its own process, and only one of them sends.

An embedded beat (``celery worker -B``) runs in a child of the collector and survives a SIGKILL
of it, so a restarted collector made two beats. Beat now runs alone (``celery beat -S
workers.beat:LockedScheduler``), and a Redis lock decides which beat sends: a second one (an
orphan, a second host) stays idle, and takes over within ``lock_ttl_s`` once the holder is gone.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import redis
from celery.beat import PersistentScheduler

from workers.app import settings_of

log = logging.getLogger(__name__)

LOCK_KEY = "medflow:beat:lock"
# Held if free or ours; renewed on every tick. Atomic, so two beats never both hold it.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def lock_ttl_s(interval_s: float) -> float:
    """Outlives the holder's longest sleep between ticks (one interval), with a margin."""
    return max(5.0, 3.0 * interval_s)


class LockedScheduler(PersistentScheduler):
    """A PersistentScheduler that sends nothing unless it holds the beat lock."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        settings = settings_of(self.app)
        self.interval_s = float(settings.reconcile_interval_s)
        self.token = uuid.uuid4().hex
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self.holding = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.hold():
            return min(self.interval_s, 1.0 + self.interval_s / 2)
        return min(float(super().tick(*args, **kwargs)), self.interval_s)

    def hold(self) -> bool:
        ttl_ms = int(lock_ttl_s(self.interval_s) * 1000)
        try:
            held = bool(self.redis.eval(_HOLD, 1, LOCK_KEY, self.token, ttl_ms))
        except redis.RedisError as exc:
            log.warning("beat lock unreadable (%s): not sending", type(exc).__name__)
            held = False
        if held != self.holding:
            log.warning("beat lock %s", "taken: this beat sends" if held else "held elsewhere")
            self.holding = held
        return held
