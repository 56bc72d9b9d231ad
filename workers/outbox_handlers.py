"""The outbox's handler registry: one function per message kind, called by the dispatcher.

A handler is ``fn(message: db.outbox.OutboxMessage, settings: Settings) -> None``. It delivers
the message (an HTTP call, a C-STORE) and returns; it raises to say "not delivered, try again"
(the dispatcher retries with exponential backoff, up to ``settings.outbox_max_attempts``). It is
called at least once per message, so the receiver (or the handler) drops duplicates by
``message.payload["event_id"]``. It runs in the collector process, outside any transaction, and
must finish well within ``db.outbox.LEASE_S`` (bound every network call with a timeout). Its
exception message is stored in ``last_error`` and logged: never put PHI in it.

To add one: write ``register("job.finished", deliver_webhooks)`` at the bottom of your module
and add the module to ``HANDLER_MODULES``, which the dispatcher imports before each run.
Messages of a kind with no handler stay pending until one is registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from db.outbox import OutboxMessage

Handler = Callable[["OutboxMessage", Settings], None]

# Modules that register handlers when imported (e.g. "workers.webhooks").
HANDLER_MODULES: tuple[str, ...] = ()

_handlers: dict[str, Handler] = {}


def register(kind: str, handler: Handler) -> None:
    """Make ``handler`` deliver messages of ``kind``; one handler per kind."""
    current = _handlers.get(kind)
    if current is not None and current is not handler:
        raise ValueError(f"outbox kind {kind!r} already has a handler")
    _handlers[kind] = handler


def unregister(kind: str) -> None:
    _handlers.pop(kind, None)


def handler_for(kind: str) -> Handler | None:
    return _handlers.get(kind)


def registered_kinds() -> frozenset[str]:
    return frozenset(_handlers)


def load_handlers(modules: tuple[str, ...] = HANDLER_MODULES) -> None:
    for name in modules:
        importlib.import_module(name)  # registers on first import; cached afterwards
