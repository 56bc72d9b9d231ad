"""Creating and filling jobs: POST /v1/jobs, /<id>/images, /<id>/seal, /<id>/cancel.

These views parse and answer; the intake service (``intake.service.Intake``) stores the blobs
(no transaction open), writes the rows in one short transaction, and sends the tasks and the
cancel flag once it commits. Images are sent as each request adds them, not at seal, so
processing overlaps the upload; the seal only says that no more will come.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from api.auth import Caller, caller, require
from api.blueprints.intake import Intake, invalid, read_intake, store
from api.blueprints.jobs import job_body, job_response, visible_job
from api.errors import ApiError
from api.extensions import services
from api.lane import check_deadline, parse_deadline
from api.serialize import intended_use
from api.serving import require_served
from api.upload_slots import upload_slot
from db.idempotency import check_same_request, key_hash, request_digest
from db.model_queue import row_for
from db.model_registry import find_model
from db.models import Job, JobStatus, Lane, ModelVersion, Role
from db.session import session_scope

bp = Blueprint("job_submit", __name__, url_prefix="/v1/jobs")

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200  # the column's width


@bp.post("")
@require(Role.SUBMITTER, Role.ADMIN)
@upload_slot
def submit() -> Response:
    who, intake, key = caller(), read_intake(), _idempotency_key()
    if not intake.model:
        raise invalid("model", "is required")
    digest = _digest(intake) if key is not None else None
    replay = _replay(who, key, digest)
    if replay is not None:  # before storing anything: a retry must not import again
        return job_response(replay, 200)
    _require_images(intake)
    deadline_at = parse_deadline(deadline_field(), datetime.now(UTC))
    with session_scope(services().sessions) as session:
        # A typo'd, (in production) non-clinical or unserved model, or an unmeetable deadline,
        # fails before any upload is stored.
        model = _require_clinical(find_model(session, intake.model))
        require_served(model.name)
        check_deadline(session, model.name, Lane.BATCH, intake.count, deadline_at)
    stored = store(intake)
    with session_scope(services().sessions) as session:
        # The model row and the caller were read already: the job is written from them.
        job, created = services().intake.submit(
            session,
            who,
            model,
            stored.images,
            seal=intake.seal,
            idempotency_key=key,
            request_digest=digest,
            deadline_at=deadline_at,
        )
        queue = row_for(session, job.model_name)
        body = job_body(job, queue, formats=stored.formats) if created else job_body(job, queue)
    return job_response(body, 202 if created else 200)


@bp.post("/<job_id>/images")
@require(Role.SUBMITTER, Role.ADMIN)
@upload_slot
def add(job_id: str) -> Response:
    who, intake = caller(), read_intake()
    if intake.count == 0:
        raise ApiError("NO_IMAGES", "send at least one file or image URI", 400)
    with session_scope(services().sessions) as session:
        _open_job(session, job_id, who)  # checked before the uploads are stored
    stored = store(intake)
    with session_scope(services().sessions) as session:
        job = _open_job(session, job_id, who)
        added = services().intake.add_blobs(session, job, stored.images)
        queue = row_for(session, job.model_name)
        body = job_body(job, queue, added=len(added), formats=stored.formats)
    return job_response(body, 200)


@bp.post("/<job_id>/seal")
@require(Role.SUBMITTER, Role.ADMIN)
def seal(job_id: str) -> Response:
    with session_scope(services().sessions) as session:
        job = services().intake.seal(session, _open_job(session, job_id, caller()))
        body = job_body(job, row_for(session, job.model_name))
    return job_response(body, 200)


@bp.post("/<job_id>/cancel")
@require(Role.SUBMITTER, Role.OPERATOR, Role.ADMIN)
def cancel(job_id: str) -> Response:
    who = caller()
    with session_scope(services().sessions) as session:
        job = services().intake.cancel(session, visible_job(session, job_id, who), who.actor)
        body = job_body(job)
    return job_response(body, 200)


def deadline_field() -> Any:
    """The request's ``deadline`` (a form field or a JSON member), unparsed."""
    if request.is_json:
        body = request.get_json(silent=True)
        return body.get("deadline") if isinstance(body, dict) else None
    return request.form.get("deadline")


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            "VALIDATION_ERROR",
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            400,
            {"header": IDEMPOTENCY_HEADER},
        )
    # Stored and compared as a keyed hash: the client's key may carry identifiers.
    return key_hash(services().settings.secret_key, key)


def _digest(intake: Intake) -> str:
    names = [upload.filename or "" for upload in intake.uploads]
    names += [f"{uri}\n{ref}" for uri, ref in intake.uris]
    return request_digest(str(intake.model), intake.seal, names)


def _replay(who: Caller, key: str | None, digest: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    query = select(Job).where(Job.owner_key_id == who.id, Job.idempotency_key == key)
    with session_scope(services().sessions) as session:
        job = session.scalars(query).first()
        if job is not None:
            check_same_request(session, job, digest)  # IDEMPOTENCY_KEY_REUSED if it differs
        return None if job is None else job_body(job)


def _require_images(intake: Intake) -> None:
    # An unsealed job may start empty (to be filled); a sealed one would have nothing to run.
    if intake.seal and intake.count == 0:
        raise ApiError(
            "NO_IMAGES",
            "a sealed job needs at least one image; send seal=false to open an empty job",
            400,
        )


def _require_clinical(model: ModelVersion) -> ModelVersion:
    """Production serves clinical models only, unless the deployment opts in (issue 9)."""
    settings = services().settings
    use = intended_use(model.card or {})
    if settings.env == "production" and use != "clinical" and not settings.allow_nonclinical_models:
        raise ApiError(
            "MODEL_NOT_CLINICAL",
            f"the model's intended use is {use}, not clinical; this deployment serves clinical "
            "models only (MEDFLOW_ALLOW_NONCLINICAL_MODELS=1 opts in)",
            422,
            {"model": f"{model.name}:{model.version}", "intended_use": use},
        )
    return model


def _open_job(session: Any, job_id: str, who: Caller) -> Job:
    job = visible_job(session, job_id, who)
    if job.status != JobStatus.OPEN:  # add_images checks too; this spares storing the uploads
        raise ApiError(
            "JOB_NOT_OPEN",
            f"the job is {job.status.value}; only an open job takes images",
            409,
            {"status": job.status.value},
        )
    return job
