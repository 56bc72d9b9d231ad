"""A result row changed after the collector wrote it fails verify with ``result_mismatch``.

Before issue 9, ``UPDATE images SET scores=...`` passed verify: the chain carried the scores'
digest but verify never recomputed it from the row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from db.audit import verify_chain
from db.collect import record_results
from db.models import AuditEvent, Image, Job
from db.session import session_scope
from messages.scored_image import ScoredImage

Factory = sessionmaker[Session]
MakeJob = Callable[..., tuple[Job, list[Image]]]


@pytest.fixture
def results(session_factory: Factory, make_job: MakeJob) -> list[Image]:
    job, images = make_job(3)
    scored = [
        ScoredImage(images[0].id, "ok", images[0].blob_key, {"nodule": 0.25}, ["nodule"]),
        ScoredImage(images[1].id, "ok", images[1].blob_key, {"nodule": 0.75}, ["nodule"]),
        ScoredImage.failure(images[2].id, "CORRUPT_IMAGE", "bad bytes"),
    ]
    with session_scope(session_factory) as session:
        assert record_results(session, job.id, scored) == 3
    return images


def result_seq(factory: Factory, image_id: int) -> int:
    with session_scope(factory) as session:
        query = select(AuditEvent.seq).where(
            AuditEvent.action == "image.result", AuditEvent.object_id == str(image_id)
        )
        return int(session.scalars(query).one())


def verify(factory: Factory) -> tuple[bool, int | None, str | None]:
    with session_scope(factory) as session:
        report = verify_chain(session)
    return report.ok, report.first_bad_seq, report.reason


def change(factory: Factory, sql: str, **params: Any) -> None:
    with session_scope(factory) as session:
        assert session.execute(text(sql), params).rowcount == 1  # type: ignore[attr-defined]


def test_untouched_results_verify(session_factory: Factory, results: list[Image]) -> None:
    assert verify(session_factory) == (True, None, None)


CHANGES = {
    "scores": ("UPDATE images SET scores = :v WHERE id = :id", '{"nodule": 0.01}', 1),
    "status": ("UPDATE images SET status = 'succeeded' WHERE id = :id", None, 2),
    "error code": ("UPDATE images SET error_code = 'EMPTY_FILE' WHERE id = :id", None, 2),
    "input": ("UPDATE images SET blob_key = :v WHERE id = :id", "ef" * 32, 0),
    "deleted": ("DELETE FROM images WHERE id = :id", None, 1),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_changed_result_row_is_a_result_mismatch(
    session_factory: Factory, results: list[Image], what: str
) -> None:
    sql, value, index = CHANGES[what]
    image_id = results[index].id
    params = {"id": image_id} if value is None else {"id": image_id, "v": value}
    change(session_factory, sql, **params)
    assert verify(session_factory) == (
        False,
        result_seq(session_factory, image_id),
        "result_mismatch",
    )
