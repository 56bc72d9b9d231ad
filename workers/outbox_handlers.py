"""The outbox's subscribers: who receives each message kind, called by the dispatcher.

A kind may have several subscribers (``job.finished``: each webhook endpoint, SR delivery).
Each has a name, unique across kinds, that names its own delivery rows in the outbox (attempts,
backoff, outcome), so a subscriber that fails never makes another one send twice.

A handler is ``fn(message: db.outbox.OutboxMessage, settings: Settings) -> None``. It delivers
the message (an HTTP call, a C-STORE) and returns; it raises to say "not delivered, try again"
(the dispatcher retries with exponential backoff, up to ``settings.outbox_max_attempts``). It is
called at least once per message and subscriber, so the receiver drops duplicates by
``message.payload["event_id"]``. It runs in the collector process, outside any transaction, and
must finish well within ``settings.outbox_lease_s`` (bound every network call with a timeout). Its
exception message is stored in ``last_error`` and logged: never put PHI in it.

To add one: at the bottom of your module write ``subscribe("job.finished", "sr-delivery",
deliver_sr)``, or, when the subscribers depend on the settings (one per configured webhook
endpoint), ``add_source("webhooks", subscriptions_from_settings)``; then add the module to
``HANDLER_MODULES``, which the dispatcher imports before each run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from db.outbox import OutboxMessage

Handler = Callable[["OutboxMessage", Settings], None]


@dataclass(frozen=True)
class Subscription:
    kind: str
    name: str  # names its delivery rows (outbox_events.subscriber): at most 64 characters
    handler: Handler


Source = Callable[[Settings], Iterable[Subscription]]

# Modules that register subscribers when imported.
HANDLER_MODULES: tuple[str, ...] = ("workers.webhooks",)

_sources: dict[str, Source] = {}


def subscribe(kind: str, name: str, handler: Handler) -> None:
    """Make ``handler`` receive every message of ``kind`` written from now on, as ``name``."""
    subscription = Subscription(kind, name, handler)
    add_source(name, lambda _settings: (subscription,))


def add_source(name: str, source: Source) -> None:
    """Register ``source``, which lists subscriptions from the settings; idempotent by name."""
    _sources[name] = source


def unregister(name: str) -> None:
    _sources.pop(name, None)


def subscriptions(settings: Settings) -> dict[str, Subscription]:
    """Every subscription now, by name; two with one name are a mistake, refused."""
    found: dict[str, Subscription] = {}
    for source in list(_sources.values()):
        for subscription in source(settings):
            if subscription.name in found:
                raise ValueError(f"outbox subscriber {subscription.name!r} is registered twice")
            found[subscription.name] = subscription
    return found


def by_kind(found: Iterable[Subscription]) -> dict[str, set[str]]:
    """Kind -> the names of its subscribers."""
    kinds: dict[str, set[str]] = {}
    for subscription in found:
        kinds.setdefault(subscription.kind, set()).add(subscription.name)
    return kinds


def load_handlers(modules: tuple[str, ...] = HANDLER_MODULES) -> None:
    for name in modules:
        importlib.import_module(name)  # registers on first import; cached afterwards
