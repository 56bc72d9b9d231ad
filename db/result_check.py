"""Do the stored result rows still say what the chain recorded? (``result_mismatch``)

The chain's ``image.result`` events carry the input's sha256, the status, the error code and
``output_digest`` (the sha256 of the scores), not the scores themselves. Checking the events'
own hashes proves nothing about a row changed afterwards (``UPDATE images SET scores=...``):
so for each such event the row is read back and those fields recomputed from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Image

RESULT_ACTION = "image.result"


def mismatched_results(session: Session, events: Sequence[Any]) -> set[int]:
    """The seqs of those ``image.result`` events (plain rows) whose image row disagrees."""
    results = [e for e in events if e.action == RESULT_ACTION]
    if not results:
        return set()
    ids = [_image_id(e) for e in results]
    rows = _rows(session, [i for i in ids if i is not None])
    return {
        event.seq
        for event, image_id in zip(results, ids, strict=True)
        if image_id is None or not _agrees(event.payload, rows.get(image_id))
    }


def _image_id(event: Any) -> int | None:
    value = event.payload.get("image_id") if isinstance(event.payload, dict) else None
    return value if isinstance(value, int) and str(value) == event.object_id else None


def _rows(session: Session, image_ids: list[int]) -> dict[int, Any]:
    columns = (Image.id, Image.job_id, Image.blob_key, Image.status, Image.error_code, Image.scores)
    found: dict[int, Any] = {}
    for start in range(0, len(image_ids), 500):  # bounded IN lists
        query = select(*columns).where(Image.id.in_(image_ids[start : start + 500]))
        found.update({row.id: row for row in session.execute(query)})
    return found


def _agrees(payload: dict[str, Any], row: Any) -> bool:
    from db.collect import output_digest  # db.collect imports the chain; not at module load

    if row is None:
        return False
    return (
        payload.get("job_id") == row.job_id
        and payload.get("input_sha256") == row.blob_key
        and payload.get("status") == str(row.status)
        and payload.get("error_code") == row.error_code
        and payload.get("output_digest") == output_digest(row.scores)
    )
