"""canonical_json: one event, one byte string, whatever the dict order; no floats."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from db.audit import GENESIS_HASH, canonical_json, event_hash, format_timestamp


def test_same_event_same_bytes_regardless_of_order() -> None:
    a = {"seq": 1, "payload": {"b": [1, {"y": 2, "x": 1}], "a": "é"}, "actor": "service:x"}
    b = {"actor": "service:x", "payload": {"a": "é", "b": [1, {"x": 1, "y": 2}]}, "seq": 1}
    assert canonical_json(a) == canonical_json(b)


def test_exact_form() -> None:
    # Sorted keys, no spaces, non-ASCII as UTF-8 bytes rather than \u escapes.
    got = canonical_json({"b": [1, None, True], "a": "é✓"})
    assert got == '{"a":"é✓","b":[1,null,true]}'.encode()


def test_tuple_and_list_are_one_form() -> None:
    assert canonical_json({"k": (1, 2)}) == canonical_json({"k": [1, 2]})


@pytest.mark.parametrize("value", [1.0, 0.1, float("nan"), {"nested": [1, {"f": 2.5}]}, [3.14]])
def test_floats_refused(value: object) -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_json({"v": value})


def test_non_string_keys_refused() -> None:
    with pytest.raises(TypeError, match="keys"):
        canonical_json({1: "one"})


def test_other_types_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({"when": datetime.now(UTC)})


def test_timestamp_fixed_format() -> None:
    moment = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert format_timestamp(moment) == "2024-03-01T12:00:00.000000Z"
    # SQLite returns naive datetimes written as UTC: the same text.
    assert format_timestamp(moment.replace(tzinfo=None)) == "2024-03-01T12:00:00.000000Z"


def test_event_hash_is_documented_formula() -> None:
    event = SimpleNamespace(
        seq=1,
        occurred_at=datetime(2024, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
        actor="service:t",
        action="x.y",
        object_type="job",
        object_id="j1",
        payload={"n": 1},
    )
    body = (
        b'{"action":"x.y","actor":"service:t","object_id":"j1","object_type":"job",'
        b'"occurred_at":"2024-03-01T12:00:00.000005Z","payload":{"n":1},"seq":1}'
    )
    expected = hashlib.sha256(bytes(32) + body).hexdigest()
    assert event_hash(GENESIS_HASH, event) == expected
