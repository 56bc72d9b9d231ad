"""Log records as one JSON object per line, carrying what the record is about.

Every process (gunicorn, Celery workers, the collector, `medflow up`'s children) writes the same
shape, so one query finds a job's lines across all of them: ``ts``, ``level``, ``logger``,
``message``, ``pid``, and, where they apply, ``request_id``, ``job_id``, ``task_id``,
``image_id`` and ``error_code``. Those come from :func:`log_context` (bound for the length of
a request or a task) or from a call's ``extra={...}``. Only ids and codes travel this way: the
PHI filter (privacy.phi) still rewrites every message before it is formatted.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

ACCESS_LOGGER = "gunicorn.access"
CONTEXT_FIELDS = ("request_id", "job_id", "task_id", "task", "image_id", "error_code")
# The dict is never mutated, only replaced (bind), so a shared empty default would be safe;
# None keeps linters and readers from having to check that.
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "medflow_log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (those in CONTEXT_FIELDS) to every record logged inside the block."""
    token = bind(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add fields to this context until ``reset(token)`` (or the context ends)."""
    known = {k: v for k, v in fields.items() if k in CONTEXT_FIELDS and v is not None}
    return _context.set({**current(), **known})


def reset(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


def _access_fields(message: str) -> dict[str, Any]:
    # gunicorn's access_log_format (api/gunicorn_conf.py) writes a JSON object: keep its fields
    # as fields, not as a string inside "message".
    try:
        fields = json.loads(message)
    except ValueError:
        return {}
    return {**fields, "message": "request"} if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record (never several lines: tracebacks are a field)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update(current())
        if record.name == ACCESS_LOGGER:
            entry.update(_access_fields(entry["message"]))
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, separators=(",", ":"))
