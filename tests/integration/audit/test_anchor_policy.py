"""Anchors that are optional are no anchors (issue 9): what production verify refuses.

Before, verify said ``ok`` with the anchors deleted, and a junk file in the anchors directory
was a 500. Now, in production: no anchor, a stale newest anchor, an unreadable anchor or one
signed with another key each fail with their own reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.anchor_keys import public_text
from db.anchor_policy import max_age_s, verify_deployment
from db.anchors import sign_head, write_anchor
from db.audit import GENESIS_HASH, ChainReport, event_hash, verify_chain
from db.session import session_scope
from tests.integration.audit.helpers import (
    POSTGRES_ONLY,
    SIGNING_KEY,
    VERIFY_KEY,
    append_many,
    tamper,
)

EVENTS = 5


@pytest.fixture
def production(migrated_settings: Settings, tmp_path: Path) -> Settings:
    # Settings.check is not run: the test database URL and secrets are the fixtures'.
    return replace(
        migrated_settings,
        env="production",
        audit_anchors=f"{tmp_path / 'anchors'}/",
        anchor_verify_key=public_text(VERIFY_KEY),
        anchor_interval_s=300,
    )


@pytest.fixture
def chain(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    append_many(session_factory, EVENTS)
    return session_factory


def verify(factory: sessionmaker[Session], settings: Settings) -> ChainReport:
    with session_scope(factory) as session:
        return verify_deployment(session, settings)


def anchor_head(
    factory: sessionmaker[Session], settings: Settings, age_s: float = 0, key: object = None
) -> None:
    with session_scope(factory) as session:
        head = verify_chain(session)
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    signed = sign_head(head.head_seq, head.head_hash, at, key or SIGNING_KEY)  # type: ignore[arg-type]
    write_anchor(signed, str(settings.audit_anchors))


def reason(report: ChainReport) -> tuple[bool, str | None]:
    return report.ok, report.reason


def test_a_fresh_anchor_passes(chain: sessionmaker[Session], production: Settings) -> None:
    anchor_head(chain, production)
    assert reason(verify(chain, production)) == (True, None)


def test_no_anchor_fails_in_production_only(
    chain: sessionmaker[Session], production: Settings
) -> None:
    assert reason(verify(chain, production)) == (False, "no_anchor")
    assert reason(verify(chain, replace(production, env="test"))) == (True, None)


def test_deleted_anchors_fail(chain: sessionmaker[Session], production: Settings) -> None:
    anchor_head(chain, production)
    for path in Path(str(production.audit_anchors)).iterdir():
        path.unlink()
    assert reason(verify(chain, production)) == (False, "no_anchor")


def test_a_stale_newest_anchor_fails(chain: sessionmaker[Session], production: Settings) -> None:
    anchor_head(chain, production, age_s=max_age_s(production) + 5)
    report = verify(chain, production)
    assert reason(report) == (False, "anchor_stale")
    assert report.first_bad_seq == EVENTS + 1 and "older than" in str(report.detail)


def test_a_forged_anchor_fails(chain: sessionmaker[Session], production: Settings) -> None:
    anchor_head(chain, production, key=Ed25519PrivateKey.generate())
    report = verify(chain, production)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, EVENTS, "anchor_mismatch")


@pytest.mark.parametrize(
    "junk", [b"not json\n", b'{"seq": "x"}\n', b"\xff\xfe\x00", b"[1, 2]\n"], ids=str
)
def test_a_junk_anchor_file_is_a_clear_failure(
    chain: sessionmaker[Session], production: Settings, junk: bytes
) -> None:
    anchor_head(chain, production)
    (Path(str(production.audit_anchors)) / "anchor-junk.json").write_bytes(junk)
    report = verify(chain, production)
    assert reason(report) == (False, "anchor_unreadable")
    assert "anchor-junk.json" in str(report.detail)


@POSTGRES_ONLY
def test_a_rewrite_after_the_last_anchor_is_the_window_anchors_leave(
    chain: sessionmaker[Session], production: Settings, engine: Engine
) -> None:
    # Anchor at seq 5, then three more events; seq 7 is rewritten and the tail rehashed.
    anchor_head(chain, production, age_s=120)
    append_many(chain, 3, tag="late")
    with tamper(engine) as conn:
        conn.execute(
            text("UPDATE audit_events SET payload = CAST(:p AS json) WHERE seq = 7"),
            {"p": '{"i": 999, "tag": "late"}'},
        )
        rehash(conn)
    # Inside the window (after the newest anchor, before the next), the rewrite is not seen:
    assert reason(verify(chain, production)) == (True, None)
    # ... and the window is bounded: unless the beat signs again, production verify fails.
    later = replace(production, anchor_interval_s=10)
    assert reason(verify(chain, later)) == (False, "anchor_stale")
    # A rewrite that reaches back before the anchor is caught by it.
    with tamper(engine) as conn:
        conn.execute(
            text("UPDATE audit_events SET payload = CAST(:p AS json) WHERE seq = 2"),
            {"p": '{"i": 999, "tag": "t"}'},
        )
        rehash(conn)
    report = verify(chain, production)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, EVENTS, "anchor_mismatch")


def rehash(conn: Connection) -> None:
    """Recompute every link, as an intruder who knows the (public) algorithm can."""
    prev = GENESIS_HASH
    rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings().all()
    for values in rows:
        new_hash = event_hash(prev, SimpleNamespace(**values))
        conn.execute(
            text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
            {"p": prev, "h": new_hash, "s": values["seq"]},
        )
        prev = new_hash
