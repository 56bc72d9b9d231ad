"""``POST /v1/infer``: one image, answered with its result as soon as it is written.

Underneath it is a one-image job like any other (audited, idempotent with ``Idempotency-Key``,
listed and readable under /v1/jobs) in the interactive lane: its chunk goes to
``infer.<model>.priority``, which the model's workers drain before their batch queue. The view
then blocks on the job's finish announcement (``workers.finished``: the collector pushes it
after its commit), not on the database; past ``timeout_s`` it answers 202 with the job to poll.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from api.auth import caller, require
from api.blueprints.intake import Intake, check_uri, invalid, store, without_nul
from api.blueprints.job_submit import (
    _digest,
    _idempotency_key,
    _replay,
    _require_clinical,
    deadline_field,
)
from api.blueprints.jobs import job_body, job_response, job_url
from api.errors import ApiError
from api.extensions import services
from api.lane import check_deadline, parse_deadline
from api.serialize import result_item
from api.serving import require_served
from api.upload_slots import upload_slot
from db.model_queue import row_for
from db.model_registry import find_model
from db.models import ApiKey, Image, Job, Lane, Role
from db.session import session_scope
from workers.finished import wait_finished

bp = Blueprint("infer", __name__, url_prefix="/v1")

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
WAITER = "medflow.infer_waiter"  # app.extensions key of the Redis client that blocks


@bp.post("/infer")
@require(Role.SUBMITTER, Role.ADMIN)
def infer() -> Response:
    started = time.monotonic()
    job_id, pending = _accept()
    if pending:
        _wait(job_id, timeout_s() - (time.monotonic() - started))
    return _answer(job_id)


@upload_slot  # while the upload is read and stored only: the wait below holds no slot
def _accept() -> tuple[str, bool]:
    """The request's job (a new one, or an Idempotency-Key's earlier one) and whether it may
    still be waiting for its result."""
    who, key = caller(), _idempotency_key()
    intake = without_nul(_read_request())
    if not intake.model:
        raise invalid("model", "is required")
    digest = _digest(intake) if key is not None else None
    replay = _replay(who, key, digest)
    if replay is not None:  # before storing anything, as POST /v1/jobs
        return str(replay["id"]), replay["status"] in ("open", "queued", "running")
    return _submit(who.id, key, digest, intake), True


def timeout_s() -> float:
    """The request's ``timeout_s`` (a form field or a JSON member), checked."""
    if request.is_json:
        body = request.get_json(silent=True)
        return _timeout(body.get("timeout_s") if isinstance(body, dict) else None)
    return _timeout(request.form.get("timeout_s"))


def _read_request() -> Intake:
    timeout_s()  # a bad timeout_s is a 400 before anything is stored
    if request.mimetype == "multipart/form-data":
        files = request.files.getlist("file")
        if len(files) != 1 or request.files.getlist("files"):
            raise invalid("file", "must be exactly one file part named 'file'")
        return Intake(request.form.get("model"), True, uploads=files)
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise invalid("body", "must be a JSON object")
        uri, model = check_uri(body.get("uri")), body.get("model")
        if model is not None and not isinstance(model, str):
            raise invalid("model", "must be a string")
        return Intake(model, True, uris=[(uri, uri)])
    raise ApiError("UNSUPPORTED_MEDIA_TYPE", "send multipart/form-data or application/json", 415)


def _timeout(value: Any) -> float:
    if value is None or value == "":
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not 0 < seconds <= MAX_TIMEOUT_S:
        raise invalid("timeout_s", f"must be seconds, above 0 and at most {MAX_TIMEOUT_S:g}")
    return seconds


def _submit(owner_id: int, key: str | None, digest: str | None, intake: Intake) -> str:
    deadline_at = parse_deadline(deadline_field(), datetime.now(UTC))
    model_ref = str(intake.model)  # checked present by _accept
    with session_scope(services().sessions) as session:
        # A typo'd, (in production) non-clinical or unserved model, or an unmeetable deadline,
        # fails before the upload is stored.
        model = find_model(session, model_ref)
        _require_clinical(model)
        require_served(model.name)
        check_deadline(session, model.name, Lane.INTERACTIVE, 1, deadline_at)
    stored = store(intake)
    with session_scope(services().sessions) as session:
        # One transaction through the intake service: the chunk is sent when it commits.
        job, _ = services().intake.submit(
            session,
            session.get_one(ApiKey, owner_id),
            model,  # the row read above: not looked up again
            stored.images,
            idempotency_key=key,
            request_digest=digest,
            lane=Lane.INTERACTIVE,
            deadline_at=deadline_at,
        )
    return job.id


def _wait(job_id: str, seconds: float) -> bool:
    if seconds <= 0:
        return False
    return wait_finished(_waiter(), job_id, seconds)


def _waiter() -> redis.Redis:
    """A Redis client whose reads may block up to MAX_TIMEOUT_S (the services' gives up at 5 s)."""
    found = current_app.extensions.get(WAITER)
    if found is None:
        url = services().settings.redis_url
        found = redis.Redis.from_url(
            url, socket_timeout=MAX_TIMEOUT_S + 5, socket_connect_timeout=2
        )
        current_app.extensions[WAITER] = found
    return found


def _answer(job_id: str) -> Response:
    """200 with the image's result once written; 202 with the job to poll before that."""
    with services().readers() as session:
        job = session.get_one(Job, job_id)
        query = select(Image).where(Image.job_id == job_id).order_by(Image.position).limit(1)
        image = session.scalars(query).first()
        if job.status.is_final and image is not None:
            response = jsonify({"job_id": job.id, **result_item(image)})
            response.headers["Location"] = job_url(job.id)
            return response
        return job_response(job_body(job, row_for(session, job.model_name)), 202)
