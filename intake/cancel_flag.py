"""Setting a cancelled job's Redis flag once the cancel commits.

A flag set before a failed commit would cancel a live job, so it waits for the commit. A
failure is logged, not raised: the database already says cancelled and the collector drops late
results, so a missing flag only costs the workers some wasted inference.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from db.session import after_commit
from workers.cancel import mark_cancelled
from workers.finished import announce_finished

log = logging.getLogger(__name__)


def set_cancel_flag_after_commit(session: Session, client: Any, job_id: str) -> None:
    def set_cancel_flag() -> None:
        try:
            mark_cancelled(client, job_id)
            announce_finished(client, job_id)  # wakes a POST /v1/infer waiting on the job
        except Exception as exc:
            log.warning("job %s: cancel flag not set (%s)", job_id, type(exc).__name__)

    after_commit(session, set_cancel_flag)
