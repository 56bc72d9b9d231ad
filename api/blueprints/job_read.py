"""Reading jobs: the list, one job, and its results (JSON pages or one streamed CSV).

Reading results is itself audited ("results.read" / "results.exported"), in the same
transaction as the read, so an access exists in the chain if and only if data was served.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from api.auth import Caller, caller, require
from api.blueprints.jobs import job_body, job_with_queue, queue_rows, visible_job
from api.blueprints.paging import bool_arg, int_arg, invalid_arg
from api.extensions import request_session, services
from api.receipts import add_receipts
from api.serialize import csv_header, csv_row, intended_use, result_item
from db.audit import append_event
from db.jobs import list_jobs, results_page
from db.models import Job, ModelVersion, Role
from db.session import session_scope

bp = Blueprint("job_read", __name__, url_prefix="/v1/jobs")

MAX_JOBS_PAGE = 200
MAX_RESULTS_PAGE = 1000
CSV_PAGE = 500  # rows per short database session while streaming


@bp.get("")
@require(Role.SUBMITTER, Role.OPERATOR, Role.ADMIN, reads_in_request_session=True)
def index() -> dict[str, Any]:
    who = caller()
    limit = int_arg("limit", default=50, minimum=1, maximum=MAX_JOBS_PAGE)
    before = request.args.get("before") or None
    owner = None if who.sees_all_jobs() else who.id
    jobs = list_jobs(request_session(), owner, limit, before)
    queues = queue_rows(request_session(), jobs)
    items = [job_body(job, queues.get(job.model_name)) for job in jobs]
    more = len(items) == limit
    return {
        "items": items,
        "next": f"/v1/jobs?limit={limit}&before={items[-1]['id']}" if more else None,
    }


@bp.get("/<job_id>")
@require(Role.SUBMITTER, Role.OPERATOR, Role.ADMIN, reads_in_request_session=True)
def show(job_id: str) -> dict[str, Any]:
    # The status poll: the key and the job (with its model's queue, for the ETA) are read
    # through one connection, in autocommit.
    job, queue = job_with_queue(request_session(), job_id, caller())
    return job_body(job, queue)


@bp.get("/<job_id>/results")
@require(Role.SUBMITTER, Role.ADMIN)  # operators run the service; results are clinical data
def results(job_id: str) -> Any:
    kind = request.args.get("format", "json")
    if kind == "csv":
        return _export(job_id, caller())
    if kind != "json":
        raise invalid_arg("format", "must be json or csv")
    limit = int_arg("limit", default=100, minimum=1, maximum=MAX_RESULTS_PAGE)
    after = int_arg("after", default=-1, minimum=-1)
    with_receipts = bool_arg("receipts")
    with session_scope(services().sessions) as session:
        job = visible_job(session, job_id, caller())
        page = results_page(session, job, limit, after)
        use = intended_use(_card(session, job))
        items = [{**result_item(image), "intended_use": use} for image in page]
        if with_receipts:
            add_receipts(session, items)
        _audit(session, job, "results.read", len(items))
    body: dict[str, Any] = {"job_id": job_id, "items": items, "next": None}
    if len(items) == limit:
        body["next"] = f"{request.path}?limit={limit}&after={items[-1]['position']}"
    return body


def _export(job_id: str, who: Caller) -> Response:
    sessions = services().sessions
    with session_scope(sessions) as session:
        job = visible_job(session, job_id, who)
        card = _card(session, job)
        _audit(session, job, "results.exported", job.total)
    rows = _csv_rows(sessions, job, _labels(card), intended_use(card))
    headers = {"Content-Disposition": f'attachment; filename="results-{job.id}.csv"'}
    return Response(rows, mimetype="text/csv", headers=headers)


def _csv_rows(sessions: Any, job: Job, labels: list[str], use: str) -> Iterator[str]:
    """The whole table, page by page, each page read in its own short session.

    No transaction stays open while the client downloads, however slow it is.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*csv_header(labels), "intended_use"])
    after = -1
    while True:
        with session_scope(sessions) as session:
            page = results_page(session, job, CSV_PAGE, after)
            for image in page:
                writer.writerow([*csv_row(image, labels), use])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < CSV_PAGE:
            return
        after = page[-1].position


def _card(session: Any, job: Job) -> dict[str, Any]:
    query = select(ModelVersion.card).where(
        ModelVersion.name == job.model_name, ModelVersion.version == job.model_version
    )
    card: dict[str, Any] = session.scalars(query).first() or {}
    return card


def _labels(card: dict[str, Any]) -> list[str]:
    return list(card.get("output", {}).get("labels", []))


def _audit(session: Any, job: Job, action: str, count: int) -> None:
    append_event(
        session,
        actor=caller().actor,
        action=action,
        object_type="job",
        object_id=job.id,
        payload={"job_id": job.id, "count": count},
    )
