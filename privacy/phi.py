"""Defence in depth against PHI in logs: redact DICOM-looking identifiers from log records.

The rule is that code never logs names, patient ids or UIDs; this filter catches the slips it
can recognise: person names in the DICOM PN form (``DOE^JOHN``, PS3.5 6.2) and UIDs (dotted
numeric components, PS3.5 9.1) with five components or more, so that IPv4 addresses and
version numbers stay readable. UIDs under the DICOM standard's own root ``1.2.840.10008.``
(transfer syntaxes, SOP classes) identify no one and are kept. Free-form patient ids cannot be
recognised; only the rule protects them.
"""

from __future__ import annotations

import logging
import re

from config.settings import Settings

PN = re.compile(r"[\w'.\-]*\w\^[\w'.\-^]*")
UID = re.compile(r"(?<![\w.])[0-2](?:\.(?:0|[1-9]\d*)){4,}(?!\.?\d)")
STANDARD_UID_ROOT = "1.2.840.10008."
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


def redact(text: str) -> str:
    text = PN.sub("[redacted-name]", text)
    return UID.sub(_uid_replacement, text)


def _uid_replacement(match: re.Match[str]) -> str:
    uid = match.group(0)
    return uid if uid.startswith(STANDARD_UID_ROOT) else "[redacted-uid]"


class PhiRedactingFilter(logging.Filter):
    """Rewrites a record's message, exception and stack text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Format once here (args may hold the identifier), then freeze the redacted text.
        try:
            message = record.getMessage()
        except Exception:  # logging reports a bad format in emit(); a filter must not raise
            message = f"{record.msg} [unformattable log arguments dropped]"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure_logging(settings: Settings, level: int | str | None = None) -> None:
    """Install the filter on every handler, and the format of ``settings.log_format`` (idempotent).

    Called by the API's WSGI entry point and the Celery worker start-up, never at import time.
    Handlers of other loggers get the filter too: Celery's task logger does not propagate to
    the root, and a filter on a logger (unlike one on a handler) misses its child loggers.
    With ``log_format == "json"`` (the default) every handler writes one JSON object per line
    (privacy.log_format), Celery's included; with "text", handlers that already have a
    formatter (Celery's) keep it. The level is ``settings.log_level`` unless one is given.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level if level is not None else settings.log_level.upper())
    others = (x for x in root.manager.loggerDict.values() if isinstance(x, logging.Logger))
    as_json = settings.log_format == "json"
    for logger in (root, *others):
        for handler in logger.handlers:
            _install(handler, as_json)


def _install(handler: logging.Handler, as_json: bool) -> None:
    from privacy.log_format import JsonFormatter

    if not any(isinstance(f, PhiRedactingFilter) for f in handler.filters):
        handler.addFilter(PhiRedactingFilter())
    if as_json:
        if not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter())
    elif handler.formatter is None:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
