"""PhiRedactingFilter: DICOM-looking names and UIDs never reach a log handler."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from config.settings import Settings
from privacy.phi import PhiRedactingFilter, configure_logging, redact

NAME = "DOE^JOHN"
UID = "1.2.826.0.1.3680043.8.498.1234567890123"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PhiRedactingFilter())
    logger = logging.getLogger("test.phi")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("patient DOE^JOHN loaded", "patient [redacted-name] loaded"),
        ("O'NEIL^MARY-ANN^^DR", "[redacted-name]"),
        ("José^Núñez", "[redacted-name]"),
        (f"study {UID}.", "study [redacted-uid]."),
        (f"uid={UID},next", "uid=[redacted-uid],next"),
        # Kept: standard UIDs identify no one; IPv4 and versions are not UIDs.
        ("syntax 1.2.840.10008.1.2.4.50", "syntax 1.2.840.10008.1.2.4.50"),
        ("host 10.0.0.1 onnxruntime 1.18.0", "host 10.0.0.1 onnxruntime 1.18.0"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_args_and_message_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("decoded %s for %s", UID, NAME)
    out = stream.getvalue()
    assert NAME not in out and UID not in out
    assert "[redacted-uid]" in out and "[redacted-name]" in out


def test_bad_format_never_raises(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("two %s %s", NAME)  # one argument short
    assert "[unformattable log arguments dropped]" in stream.getvalue()
    assert NAME not in stream.getvalue()


def test_exception_text_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError(f"bad dataset {UID} of {NAME}")
    except ValueError:
        logger.exception("decode failed")
    out = stream.getvalue()
    assert "Traceback" in out and "ValueError" in out
    assert NAME not in out and UID not in out


def test_configure_logging_installs_once_on_every_handler() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    other = logging.getLogger("test.phi.celery_like")
    other_handler = logging.StreamHandler(stream)
    other.addHandler(other_handler)
    other.propagate = False  # like Celery's task logger
    try:
        root.handlers = [logging.StreamHandler(io.StringIO())]
        configure_logging(Settings(env="test"))
        configure_logging(Settings(env="test"))
        for handler in (*root.handlers, other_handler):
            assert sum(isinstance(f, PhiRedactingFilter) for f in handler.filters) == 1
        other.warning("name %s", NAME)
        assert NAME not in stream.getvalue()
    finally:
        root.handlers, root.level = saved
        other.removeHandler(other_handler)
        other.propagate = True
