"""JSON log lines: one object per line, with the ids bound to the request or task."""

from __future__ import annotations

import io
import json
import logging

from privacy.log_format import JsonFormatter, log_context
from privacy.phi import PhiRedactingFilter


def _logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PhiRedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.log_format")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_context_and_extra_fields_land_in_one_json_object_per_line() -> None:
    logger, stream = _logger()
    with log_context(job_id="j1", task_id="t1"):
        logger.warning("image %d failed", 7, extra={"image_id": 7, "error_code": "EMPTY_FILE"})
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "image 7 failed" and first["level"] == "WARNING"
    assert (first["job_id"], first["task_id"], first["image_id"]) == ("j1", "t1", 7)
    assert first["error_code"] == "EMPTY_FILE"
    assert "job_id" not in second  # the context ended with the block


def test_a_traceback_stays_on_the_line_and_phi_is_redacted() -> None:
    logger, stream = _logger()
    try:
        raise ValueError("patient DOE^JOHN")
    except ValueError:
        logger.exception("failed for DOE^JOHN")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert "ValueError" in entry["exception"]
    assert "DOE^JOHN" not in line


def test_a_gunicorn_access_line_becomes_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("gunicorn.access")
    saved = access.handlers, access.propagate, access.level
    access.handlers, access.propagate = [handler], False
    access.setLevel(logging.INFO)
    try:
        access.info('{"method": "GET", "path": "/healthz", "status": 200}')
    finally:
        access.handlers, access.propagate, access.level = saved
    entry = json.loads(stream.getvalue())
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
