"""Deadlines and queue caps as the API answers them: 429 with a Retry-After the client can use.

A deadline is checked before anything is stored, against the forecast of the model's queue
(``db.model_queue.forecast``): what is queued ahead, and the model's measured rate. A model
never measured yet has no forecast, and a deadline on it is accepted. The cap is enforced
atomically when the images are admitted (``db.jobs.add_images``); QueueFull becomes 429 here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import ApiError
from db.model_queue import QueueFull, forecast, seconds_until_meetable, seconds_until_room
from db.models import Lane
from pipeline.errors import ErrorCode

MAX_DEADLINE_S = 7 * 24 * 3600
TOO_FAR = f"is more than {MAX_DEADLINE_S} seconds away"


def parse_deadline(value: Any, now: datetime) -> datetime | None:
    """``deadline``: seconds from now (a number) or an ISO 8601 timestamp with a time zone."""
    if value is None or value == "":
        return None
    seconds = _seconds(value)
    if seconds is not None and not 0 < seconds <= MAX_DEADLINE_S:  # NaN and infinities too
        # Checked before the sum: a huge number of seconds overflows a datetime (a 500).
        raise _invalid("is already past" if not seconds > 0 else TOO_FAR)
    at = _timestamp(value) if seconds is None else now + timedelta(seconds=seconds)
    if at <= now:
        raise _invalid("is already past")
    if at > now + timedelta(seconds=MAX_DEADLINE_S):
        raise _invalid(TOO_FAR)
    return at


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        raise _invalid("must be seconds or an ISO 8601 timestamp")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("must be seconds or an ISO 8601 timestamp") from None
    if at.tzinfo is None:
        raise _invalid("needs a time zone (e.g. 2026-01-01T12:00:00Z)")
    try:
        return at.astimezone(UTC)
    except OverflowError:  # year 1 at +01:00 is before the first representable instant
        raise _invalid("is already past") from None


def _invalid(message: str) -> ApiError:
    return ApiError("VALIDATION_ERROR", f"deadline {message}", 400, {"field": "deadline"})


def check_deadline(
    session: Any, model_name: str, lane: Lane, count: int, deadline_at: datetime | None
) -> None:
    """429 DEADLINE_UNMEETABLE when the forecast finishes after ``deadline_at``."""
    if deadline_at is None:
        return
    outlook = forecast(session, model_name, lane, count)
    if outlook.eta_s is None:
        return
    within_s = (deadline_at - datetime.now(UTC)).total_seconds()
    if outlook.eta_s <= within_s:
        return
    wait_s = seconds_until_meetable(outlook, within_s)
    raise ApiError(
        ErrorCode.DEADLINE_UNMEETABLE.value,
        "the model's queue cannot finish these images by the deadline",
        429,
        {"eta_s": outlook.eta_s, "deadline_in_s": round(within_s, 1), **outlook.basis()},
        headers={"Retry-After": str(wait_s)},
    )


def queue_full(exc: QueueFull) -> ApiError:
    return ApiError(
        ErrorCode.QUEUE_FULL.value,
        "the model's queue is full; retry later",
        429,
        {"queued": exc.queued, "cap": exc.cap, "requested": exc.requested},
        headers={"Retry-After": str(seconds_until_room(exc))},
    )
