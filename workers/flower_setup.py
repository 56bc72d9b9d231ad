"""Flower as MedFlow runs it: read-only unless asked, and every queue listed from the start.

Called from deploy/flowerconfig.py, which Flower executes before it builds its application.

- Write actions (apply or send a task, revoke, abort, time and rate limits, worker shutdown,
  pool restart/grow/shrink/autoscale, queue consumers) are removed from Flower's routes unless
  ``MEDFLOW_FLOWER_WRITE=1``: anyone with Flower's password could otherwise put work on the
  queues or stop the workers. Its UI buttons post to these same routes, so they fail (404).
- Its log lines are JSON, like every other process's.
- The broker page lists the queues of the workers Flower has already asked about; before an
  operator opens the workers page that is only the default queue. Every model's queue and the
  results queue are listed from the start instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

WRITE_ENV = "MEDFLOW_FLOWER_WRITE"
WRITE_ROUTES = (
    "/api/task/apply/",
    "/api/task/async-apply/",
    "/api/task/send-task/",
    "/api/task/abort/",
    "/api/task/timeout/",
    "/api/task/rate-limit/",
    "/api/task/revoke/",
    "/api/worker/shutdown/",
    "/api/worker/pool/",
    "/api/worker/queue/",
)


def configure_flower(environ: dict[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    if env.get(WRITE_ENV) != "1":
        from flower import urls

        urls.handlers[:] = [h for h in urls.handlers if not is_write_route(_pattern(h))]
    _list_every_queue(medflow_queues(env))
    _json_logs_after_tornado()


def _json_logs_after_tornado() -> None:
    """Flower logs through tornado, which installs its own formatter once the options are
    parsed; a parse callback registered now runs after it and gives every handler the PHI
    filter and MedFlow's format (JSON lines, like every other process)."""
    from tornado.options import add_parse_callback

    def configure() -> None:
        from config.settings import Settings
        from privacy.phi import configure_logging

        configure_logging(Settings.from_env())

    add_parse_callback(configure)


def is_write_route(pattern: str) -> bool:
    return pattern.startswith(WRITE_ROUTES)


def medflow_queues(environ: Any) -> list[str]:
    from config.settings import Settings
    from workers.queues import RESULTS_QUEUE, infer_queue

    settings = Settings.from_env(environ)
    return sorted({infer_queue(m) for m in settings.models} | {RESULTS_QUEUE})


def _list_every_queue(configured: Iterable[str]) -> None:
    from flower.views import BaseHandler

    known = set(configured)
    found_by_flower = BaseHandler.get_active_queue_names

    def every_queue(self: Any) -> list[str]:
        return sorted(known | set(found_by_flower(self)))

    BaseHandler.get_active_queue_names = every_queue


def _pattern(handler: Any) -> str:
    if isinstance(handler, tuple):
        return str(handler[0])
    return str(handler.regex.pattern).lstrip("^")
