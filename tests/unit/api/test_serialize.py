"""CSV cells and timestamps as the API writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.serialize import safe_cell, timestamp


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"])
def test_formula_cells_are_neutralised(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", [None, "", "scan.png", "1=1"])
def test_plain_cells_are_kept(text):
    assert safe_cell(text) == text


def test_timestamps_are_utc_with_z():
    assert timestamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"
    east = timezone(timedelta(hours=2))
    assert timestamp(datetime(2024, 1, 2, 5, 4, 5, tzinfo=east)) == "2024-01-02T03:04:05Z"
    assert timestamp(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05Z"  # naive = UTC
    assert timestamp(None) is None
