"""The tamper-evident audit chain: append events, verify the chain.

Each event is hashed together with the hash of the event before it::

    hash = sha256(bytes.fromhex(prev_hash) || canonical_json(event))
    event = {seq, occurred_at, actor, action, object_type, object_id, payload}

- ``prev_hash`` of the first event (seq 1) is the genesis value, 64 hex zeros (32 zero bytes).
- ``occurred_at`` is UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six digits of microseconds).
- ``canonical_json``: sorted keys, separators ``(",", ":")``, ``ensure_ascii=False``, UTF-8.
  Floats are refused (``TypeError``): their text is not stable across languages and libraries,
  so a caller formats a number explicitly as a string (``f"{score:.6f}"``) when it needs one.
- ``seq`` is contiguous from 1. Appends are serialised: on Postgres by a transaction-scoped
  advisory lock taken before the head is read; on SQLite by the database write lock (the
  sessions from db/session.py begin IMMEDIATE). The primary key on ``seq`` and the unique
  ``hash`` mean that a caller who bypasses the lock gets an IntegrityError, never a fork.
- The event joins the caller's transaction (flushed, never committed here), so an event exists
  if and only if the change it records does. The advisory lock is held until that transaction
  ends: append late in a transaction and keep the transaction short. READ COMMITTED (the
  Postgres default) is assumed, so the head read after the lock sees the last committed append.
- A second append in the same transaction (or savepoint) already holds the lock and knows the
  head it wrote itself: it neither locks nor reads again (``HEAD_KEY``), which spares a job's
  submission and its last result two round trips per event after the first.

Nothing here updates or deletes an event; the migrations make the database refuse it too.
Anchors (db/anchors.py, Ed25519-signed heads) catch a consistent rewrite of the whole chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import AuditEvent
from db.result_check import mismatched_results

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from db.anchors import Anchor

GENESIS_HASH = "0" * 64
# Key of the Postgres advisory lock that serialises appends: the ASCII of "mf.audit" as a
# signed 64-bit integer, so no other lock in this database is likely to collide with it.
AUDIT_LOCK_KEY = int.from_bytes(b"mf.audit", "big")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
VERIFY_BATCH = 1000
# session.info: (transaction, seq, hash) of the last event this session appended (_own_head).
HEAD_KEY = "medflow_audit_head"
# Column widths of AuditEvent: checked up front so SQLite (which ignores them) and Postgres
# (which refuses longer values) accept exactly the same events.
_WIDTHS = {"actor": 64, "action": 64, "object_type": 32, "object_id": 64}


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value that the chain hashes (see the module docstring)."""
    _refuse_unstable(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _refuse_unstable(obj: Any) -> None:
    if isinstance(obj, float):
        raise TypeError("floats are refused in audit payloads; format them as strings")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):  # json.dumps would turn 1 into "1": two forms, one text
                raise TypeError(f"audit payload keys must be str, not {type(key).__name__}")
            _refuse_unstable(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _refuse_unstable(value)


def format_timestamp(moment: datetime) -> str:
    # SQLite hands back naive datetimes; they were written as UTC (see append_event).
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


class EventFields(Protocol):
    """An AuditEvent or a row of its columns: what the hash covers."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: dict[str, Any]


def event_body(event: EventFields) -> dict[str, Any]:
    """What an event's hash covers (with the previous hash); a result's receipt carries it."""
    return {
        "seq": event.seq,
        "occurred_at": format_timestamp(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "payload": event.payload,
    }


def event_hash(prev_hash: str, event: EventFields) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_json(event_body(event))).hexdigest()


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what it records; the chain fields are added on append."""

    actor: str
    action: str
    object_type: str
    object_id: str
    payload: dict[str, Any]


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: dict[str, Any],
) -> AuditEvent:
    """Add the next event of the chain to the caller's transaction (flushed, not committed)."""
    (event,) = append_events(session, [NewEvent(actor, action, object_type, object_id, payload)])
    return event


def append_events(session: Session, events: Sequence[NewEvent]) -> list[AuditEvent]:
    """Add ``events`` to the chain in order, under one lock and one read of the head.

    The collector appends a chunk's results at once: one lock, one head read and one INSERT
    instead of one each per image (appends are serialised, so their cost bounds every writer).
    """
    if not events:
        return []
    for new in events:
        _check_fields({name: getattr(new, name) for name in _WIDTHS}, new.payload)
    # Store what was hashed: the round trip turns tuples into lists, as the database would.
    stored = [json.loads(canonical_json(new.payload)) for new in events]
    seq, prev_hash = _own_head(session) or _lock_and_read_head(session)
    rows = []
    for new, payload in zip(events, stored, strict=True):
        seq += 1
        row = AuditEvent(
            seq=seq,
            occurred_at=_now(),
            actor=new.actor,
            action=new.action,
            object_type=new.object_type,
            object_id=new.object_id,
            payload=payload,
        )
        row.prev_hash = prev_hash
        row.hash = prev_hash = event_hash(prev_hash, row)
        rows.append(row)
    session.add_all(rows)
    session.flush()
    session.info[HEAD_KEY] = (_current_transaction(session), seq, prev_hash)
    return rows


def _current_transaction(session: Session) -> Any:
    return session.get_nested_transaction() or session.get_transaction()


def _own_head(session: Session) -> tuple[int, str] | None:
    """The head this session appended in its current (innermost) transaction, if it did.

    The lock taken then is still held, so no one else has appended since. Any other
    transaction (a new one, a savepoint begun or rolled back since) reads the head again.
    """
    known = session.info.get(HEAD_KEY)
    if known is None or known[0] is not _current_transaction(session):
        return None
    return known[1], known[2]


def _check_fields(fields: dict[str, Any], payload: Any) -> None:
    for name, value in fields.items():
        # A non-str would be hashed as written (5) but read back as stored ("5").
        if not isinstance(value, str):
            raise TypeError(f"audit {name} must be str, not {type(value).__name__}")
        if not value or len(value) > _WIDTHS[name]:
            raise ValueError(f"audit {name} must be 1 to {_WIDTHS[name]} characters")
    if not isinstance(payload, dict):
        raise TypeError("audit payload must be a dict")


def _now() -> datetime:
    # Microseconds are kept: both Postgres and SQLAlchemy's SQLite storage keep all six digits.
    return datetime.now(UTC)


def _lock_and_read_head(session: Session) -> tuple[int, str]:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    # The head is read after the lock, in a new statement, so it is the last committed append.
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS_HASH) if row is None else (row.seq, row.hash)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int  # events read
    head_seq: int  # last seq read (0: empty chain)
    head_hash: str
    first_bad_seq: int | None = None
    # "gap" | "broken_link" | "hash_mismatch" | "anchor_mismatch" | "anchor_beyond_head"
    # | "result_mismatch" (an image.result event no longer matches its result row)
    # | db/anchor_policy.py: "no_anchor" | "anchor_stale" | "anchor_unreadable"
    # | "anchor_unverifiable"
    reason: str | None = None
    detail: str | None = None  # for a person: which file, how old; never event contents

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "detail": self.detail,
        }


def verify_chain(
    session: Session,
    anchors: Iterable[Anchor] = (),
    *,
    key: Ed25519PublicKey | None = None,
    since: Anchor | None = None,
) -> ChainReport:
    """Walk the chain in seq order, in batches, and report the first bad seq and why.

    ``key`` (the anchors' Ed25519 public key) checks the anchors' signatures; anchors without it
    are refused rather than trusted. Each ``image.result`` event is also checked against the
    result row it recorded (db/result_check.py): a row changed after the fact is
    ``result_mismatch``. ``since`` (an anchor already checked) starts the walk after its seq,
    from its hash: what the anchoring beat does, so each run reads only the new events.
    """
    by_seq = _anchors_by_seq(anchors, key)
    start, prev = (since.seq, since.hash) if since else (0, GENESIS_HASH)
    expected, count = start + 1, 0
    bad: tuple[int, str] | None = _anchor_fault(by_seq.pop(start, []), prev, key, start)
    for batch in _stream(session, start):
        mismatched = mismatched_results(session, batch) if bad is None else set()
        for row in batch:
            count += 1
            anchor_fault = _anchor_fault(by_seq.pop(row.seq, []), row.hash, key, row.seq)
            result_fault = (row.seq, "result_mismatch") if row.seq in mismatched else None
            bad = bad or _link_fault(row, expected, prev) or anchor_fault or result_fault
            expected, prev = row.seq + 1, row.hash
    head_seq = expected - 1
    if bad is None and by_seq:
        beyond = min(by_seq) > head_seq
        # Anchors left over either point past the head (truncation) or into a gap.
        bad = (head_seq + 1, "anchor_beyond_head") if beyond else (min(by_seq), "anchor_mismatch")
    first_bad, reason = bad if bad else (None, None)
    return ChainReport(bad is None, count, head_seq, prev, first_bad, reason)


def _anchors_by_seq(
    anchors: Iterable[Anchor], key: Ed25519PublicKey | None
) -> dict[int, list[Anchor]]:
    by_seq: dict[int, list[Anchor]] = {}
    for anchor in anchors:
        if key is None:
            raise ValueError("verify_chain needs the public key to check anchors")
        by_seq.setdefault(anchor.seq, []).append(anchor)
    return by_seq


def _link_fault(row: Any, expected: int, prev: str) -> tuple[int, str] | None:
    if row.seq != expected:
        return expected, "gap"
    if row.prev_hash != prev:
        return row.seq, "broken_link"
    if event_hash(prev, row) != row.hash:
        return row.seq, "hash_mismatch"
    return None


def _anchor_fault(
    anchors: Sequence[Anchor], chain_hash: str, key: Ed25519PublicKey | None, seq: int
) -> tuple[int, str] | None:
    for anchor in anchors:
        if key is None or anchor.hash != chain_hash or not anchor.signature_valid(key):
            return seq, "anchor_mismatch"
    return None


def _stream(session: Session, after: int = 0) -> Iterator[list[Any]]:
    # Keyset pages of plain rows (not ORM objects): memory stays flat and nothing enters the
    # session's identity map, whatever the length of the chain. One page at a time, so the
    # result rows of a page's image.result events are read in one query.
    columns = [getattr(AuditEvent, c.key) for c in AuditEvent.__table__.columns]
    while True:
        query = select(*columns).where(AuditEvent.seq > after).order_by(AuditEvent.seq)
        rows = list(session.execute(query.limit(VERIFY_BATCH)).all())
        yield rows
        if len(rows) < VERIFY_BATCH:
            return
        after = rows[-1].seq
