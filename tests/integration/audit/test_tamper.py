"""Tampering as a Postgres superuser (triggers off): verify names the first bad seq and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from db.anchors import Anchor, sign_head
from db.audit import GENESIS_HASH, ChainReport, event_hash, verify_chain
from db.session import session_scope
from tests.integration.audit.helpers import (
    POSTGRES_ONLY,
    SIGNING_KEY,
    VERIFY_KEY,
    append_many,
    row,
    tamper,
)

pytestmark = POSTGRES_ONLY
EVENTS = 10
CONTENT = ("occurred_at", "actor", "action", "object_type", "object_id", "payload")


@pytest.fixture
def chain(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    append_many(session_factory, EVENTS)
    return session_factory


def verify(factory: sessionmaker[Session], anchors: list[Anchor] | None = None) -> ChainReport:
    with session_scope(factory) as session:
        return verify_chain(session, anchors or [], key=VERIFY_KEY)


def anchor_at(factory: sessionmaker[Session], seq: int) -> Anchor:
    with session_scope(factory) as session:
        chain_hash = session.execute(
            text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": seq}
        ).scalar_one()
    return sign_head(seq, chain_hash, datetime.now(UTC), SIGNING_KEY)


def bad(report: ChainReport) -> tuple[bool, int | None, str | None]:
    return report.ok, report.first_bad_seq, report.reason


def set_columns(conn: Connection, seq: int, values: dict[str, object]) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    params = {**values, "seq": seq}
    if "payload" in params:
        assignments = assignments.replace(":payload", "CAST(:payload AS json)")
        params["payload"] = _json(params["payload"])
    conn.execute(text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq"), params)


def _json(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_edited_payload_is_a_hash_mismatch(chain: sessionmaker[Session], engine: Engine) -> None:
    with tamper(engine) as conn:
        set_columns(conn, 4, {"payload": {"i": 999, "tag": "t", "note": "ünïcode"}})
    assert bad(verify(chain)) == (False, 4, "hash_mismatch")


def test_edited_timestamp_is_a_hash_mismatch(chain: sessionmaker[Session], engine: Engine) -> None:
    with tamper(engine) as conn:
        conn.execute(
            text(
                "UPDATE audit_events SET occurred_at = occurred_at - interval '1 microsecond' "
                "WHERE seq = 7"
            )
        )
    assert bad(verify(chain)) == (False, 7, "hash_mismatch")


def test_deleted_row_is_a_gap(chain: sessionmaker[Session], engine: Engine) -> None:
    with tamper(engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    assert bad(verify(chain)) == (False, 4, "gap")


def test_deleted_first_row_is_a_gap(chain: sessionmaker[Session], engine: Engine) -> None:
    with tamper(engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 1"))
    assert bad(verify(chain)) == (False, 1, "gap")


def test_swapped_rows_whole_is_a_broken_link(chain: sessionmaker[Session], engine: Engine) -> None:
    # Everything but seq moves, hashes included: each row is self-consistent, the links break.
    with tamper(engine) as conn:
        three, six = row(conn, 3), row(conn, 6)
        columns = (*CONTENT, "prev_hash", "hash")
        set_columns(conn, 3, {c: "x" * 64 if c == "hash" else six[c] for c in columns})
        set_columns(conn, 6, {c: three[c] for c in columns})
        set_columns(conn, 3, {"hash": six["hash"]})  # hash is UNIQUE: moved in two steps
    assert bad(verify(chain)) == (False, 3, "broken_link")


def test_swapped_contents_is_a_hash_mismatch(chain: sessionmaker[Session], engine: Engine) -> None:
    # The events trade places but keep the chain columns: the first one no longer hashes.
    with tamper(engine) as conn:
        three, six = row(conn, 3), row(conn, 6)
        set_columns(conn, 3, {c: six[c] for c in CONTENT})
        set_columns(conn, 6, {c: three[c] for c in CONTENT})
    assert bad(verify(chain)) == (False, 3, "hash_mismatch")


def test_edit_with_recomputed_hash_breaks_the_next_link(
    chain: sessionmaker[Session], engine: Engine
) -> None:
    with tamper(engine) as conn:
        four = row(conn, 4)
        four["payload"] = {"i": 999, "tag": "t", "note": "forged"}
        set_columns(conn, 4, {"payload": four["payload"]})
        set_columns(conn, 4, {"hash": event_hash(four["prev_hash"], _event(four))})
    assert bad(verify(chain)) == (False, 5, "broken_link")


def test_consistent_rewrite_without_the_key_is_caught_by_anchors(
    chain: sessionmaker[Session], engine: Engine
) -> None:
    early, late = anchor_at(chain, 2), anchor_at(chain, 8)
    with tamper(engine) as conn:
        set_columns(conn, 4, {"payload": {"i": 999, "tag": "t", "note": "forged"}})
        _rehash_all(conn)
    assert verify(chain).ok  # the chain alone cannot tell: that is what anchors are for
    assert bad(verify(chain, [early, late])) == (False, 8, "anchor_mismatch")
    # Nor can the intruder re-sign the new head without the key.
    head = verify(chain)
    guessed = Ed25519PrivateKey.generate()
    forged = sign_head(head.head_seq, head.head_hash, datetime.now(UTC), guessed)
    assert bad(verify(chain, [early, forged])) == (False, EVENTS, "anchor_mismatch")


def test_truncated_tail_is_caught_by_anchors(chain: sessionmaker[Session], engine: Engine) -> None:
    head = anchor_at(chain, EVENTS)
    with tamper(engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq > 7"))
    assert verify(chain).ok  # a shorter chain is still a valid chain
    assert bad(verify(chain, [head])) == (False, 8, "anchor_beyond_head")


def test_truncated_table_is_caught_by_anchors(chain: sessionmaker[Session], engine: Engine) -> None:
    head = anchor_at(chain, EVENTS)
    with tamper(engine) as conn:
        conn.execute(text("TRUNCATE audit_events"))
    report = verify(chain, [head])
    assert bad(report) == (False, 1, "anchor_beyond_head")
    assert (report.events, report.head_hash) == (0, GENESIS_HASH)


def _event(values: dict[str, Any]) -> Any:
    return SimpleNamespace(**values)


def _rehash_all(conn: Connection) -> None:
    """What an intruder who knows the (public) algorithm but not the key can do."""
    prev = GENESIS_HASH
    rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings().all()
    for values in rows:
        new_hash = event_hash(prev, _event(dict(values)))
        conn.execute(
            text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
            {"p": prev, "h": new_hash, "s": values["seq"]},
        )
        prev = new_hash
