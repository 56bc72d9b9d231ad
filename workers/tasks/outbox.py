"""``medflow.dispatch_outbox`` (beat, in the collector): deliver the outbox's due messages.

Each run, in one short transaction, fans new facts out into one row per subscriber
(``workers.outbox_handlers``) and claims a batch of due subscriber rows; it then calls each
row's handler outside any transaction and records the outcome in another: sent, or failed and
due again after an exponential backoff. A dispatcher that dies between the
claim and the outcome leaves its rows to be claimed again after the lease: at least once.
Logs ids, kinds and error class names only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task

from config.settings import Settings
from workers import db_sessions, outbox_handlers
from workers.app import settings_of
from workers.outbox_handlers import Subscription

if TYPE_CHECKING:
    from db.outbox import OutboxMessage

log = logging.getLogger(__name__)

# Rows per run: bounds one run's time (each handler call is bounded by its own timeouts).
OUTBOX_BATCH = 50
BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 3600.0


@shared_task(name="medflow.dispatch_outbox", bind=True, ignore_result=True, acks_late=True)
def dispatch_outbox(self: Task) -> int:
    return dispatch_due(settings_of(self.app))


def dispatch_due(settings: Settings, limit: int = OUTBOX_BATCH) -> int:
    """Deliver what is due now; returns how many were sent."""
    from db.outbox import claim_due, fan_out
    from db.session import session_scope

    outbox_handlers.load_handlers()
    found = outbox_handlers.subscriptions(settings)
    if not found:
        return 0
    factory = db_sessions.session_factory(settings)
    with session_scope(factory) as session:
        fan_out(session, outbox_handlers.by_kind(found.values()), limit)
        claimed = claim_due(session, limit, found, settings.outbox_lease_s)
    return sum(
        deliver(factory, settings, found.get(message.subscriber), message) for message in claimed
    )


def deliver(
    factory: Any, settings: Settings, subscription: Subscription | None, message: OutboxMessage
) -> bool:
    """Call the subscriber's handler and record the outcome; returns whether it was sent."""
    from db.outbox import mark_failed, mark_sent
    from db.session import session_scope

    try:
        if subscription is None:  # unregistered between the claim and now
            raise LookupError(f"no subscriber {message.subscriber}")
        subscription.handler(message, settings)
    except Exception as exc:
        delay = retry_delay(message.attempts, settings.outbox_backoff_s)
        with session_scope(factory) as session:
            status = mark_failed(
                session, message.id, _describe(exc), delay, settings.outbox_max_attempts
            )
        log.warning(
            "outbox %d (%s to %s): attempt %d failed (%s); now %s",
            message.id,
            message.kind,
            message.subscriber,
            message.attempts,
            type(exc).__name__,
            status.value,
        )
        return False
    with session_scope(factory) as session:
        mark_sent(session, message.id)
    return True


def retry_delay(attempts: int, base_s: float = BACKOFF_BASE_S) -> float:
    """Seconds before attempt ``attempts + 1``: base, 2 x base, 4 x base ... capped at an hour."""
    return min(BACKOFF_MAX_S, base_s * 2 ** max(0, attempts - 1))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
