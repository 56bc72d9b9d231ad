"""Parsing ``deadline``: seconds from now, or an ISO 8601 timestamp with a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.commands.submit import eta_text
from api.errors import ApiError
from api.lane import parse_deadline

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, NOW + timedelta(seconds=30)),
        ("2.5", NOW + timedelta(seconds=2.5)),
        ("2026-01-01T12:05:00Z", NOW + timedelta(minutes=5)),
        ("2026-01-01T13:05:00+01:00", NOW + timedelta(minutes=5)),
        (None, None),
    ],
)
def test_deadlines_that_parse(value: object, expected: datetime | None) -> None:
    assert parse_deadline(value, NOW) == expected


@pytest.mark.parametrize(
    "value", [0, "-1", True, "tomorrow", "2026-01-01T12:05:00", "2025-12-31T00:00:00Z", 10**9]
)
def test_deadlines_refused(value: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_deadline(value, NOW)
    assert (caught.value.code, caught.value.details) == ("VALIDATION_ERROR", {"field": "deadline"})


def test_the_progress_line_shows_the_eta_and_its_basis() -> None:
    basis = {"images_ahead": 120, "images_left": 30, "rate_per_s": 25.0}
    assert (
        eta_text({"eta": {"seconds": 6.0, "basis": basis}}) == "  eta 6 s (120 ahead at 25.0 img/s)"
    )
    unmeasured = {"eta": {"seconds": None, "basis": {**basis, "rate_per_s": None}}}
    assert "rate not measured" in eta_text(unmeasured)
    assert eta_text({"eta": None}) == ""
