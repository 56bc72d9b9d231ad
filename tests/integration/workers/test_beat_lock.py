"""Two beats on one Redis: only the holder of the lock sends; the other takes over once the
holder is gone (its lock expires), and a holder renews its own lock on every tick."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import redis

from config.settings import Settings
from workers.app import make_celery
from workers.beat import LOCK_KEY, LockedScheduler


def scheduler(settings: Settings, path: Path) -> LockedScheduler:
    return LockedScheduler(app=make_celery(settings), schedule_filename=str(path))


def test_one_beat_holds_the_lock_until_it_dies(
    private_redis_url: str, worker_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(worker_settings, redis_url=private_redis_url, reconcile_interval_s=1)
    client = redis.Redis.from_url(private_redis_url)
    client.delete(LOCK_KEY)
    first = scheduler(settings, tmp_path / "first")
    second = scheduler(settings, tmp_path / "second")

    assert first.hold() and not second.hold()
    assert first.hold(), "the holder renews its own lock"
    ttl_ms = client.pttl(LOCK_KEY)
    assert 0 < ttl_ms <= 5000
    # The holder dies (no more renewals): the other takes over once the lock expires.
    time.sleep(ttl_ms / 1000 + 0.2)
    assert second.hold() and not first.hold()
    # While it does not hold the lock, a beat's tick sends nothing and sleeps briefly.
    assert first.tick() <= settings.reconcile_interval_s
    client.close()
