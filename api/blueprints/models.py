"""Models: list every version with its card (GET), register a new version (POST, admin).

A new version is written to a staging directory, loaded there with the repository's own rules
(card against graph, sha256), its card's allowances proven there (a card that allows
reduced-resolution JPEG 2000 decoding must come with JPEG 2000 ``probe`` images on which the
scores move by no more than its tolerance), and only then published to the model repository
(renamed into the directory, or uploaded to S3 graph first, card last), so the workers and the
registry never see a half-written or invalid version, and a version registered through one API
pod is served by workers on any host.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, request
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from api.auth import caller, require
from api.errors import ApiError
from api.extensions import services
from api.readiness import monitor
from api.serialize import model_item
from db.audit import append_event
from db.model_registry import find_model, sync_models
from db.models import ModelVersion, Role
from db.session import session_scope
from pipeline.card import ModelCard
from pipeline.errors import ModelError
from storage.model_store import ModelStore, ModelVersionExists, open_model_store, staged_version

if TYPE_CHECKING:
    from pipeline.repository import LoadedModel

bp = Blueprint("models", __name__, url_prefix="/v1/models")

# Names and versions become directory names: nothing that could climb out of the model root.
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: "$" passes a "\n"
MAX_CARD_BYTES = 1024 * 1024
# Probe images prove a reduced-JPEG-2000 allowance; a few full-size frames are enough, and the
# bounds keep one registration from holding an API thread for long.
MAX_PROBES = 8
MAX_PROBE_BYTES = 64 * 1024 * 1024


@bp.get("")
@require(Role.SUBMITTER, Role.OPERATOR, Role.ADMIN)
def index() -> dict[str, Any]:
    query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
    snapshot = monitor(current_app._get_current_object()).snapshot  # type: ignore[attr-defined]
    serving = snapshot.models if snapshot is not None else {}
    with session_scope(services().sessions) as session:
        items = [model_item(row) for row in session.scalars(query)]
    for item in items:
        status = serving.get(item["name"])
        item["workers"] = status["workers"] if status else None
        item["served"] = status["served"] if status else None
    return {"items": items}


@bp.post("")
@require(Role.ADMIN)
def register() -> tuple[dict[str, Any], int]:
    graph, card_file = _part("model.onnx"), _part("model.json")
    card_bytes = card_file.stream.read(MAX_CARD_BYTES + 1)
    card = _card(card_bytes)
    store = open_model_store(services().settings)
    if (store.local_root / card.name / card.version).exists() or _known(card):
        raise _exists(card)
    proof = _install(store, card, graph, card_bytes)
    store.refresh()
    with session_scope(services().sessions) as session:
        sync_models(session, _repository(store.local_root))
        row = find_model(session, card.ref)
        # The registry records the version itself; this event records who uploaded it.
        append_event(
            session,
            actor=caller().actor,
            action="model.uploaded",
            object_type="model",
            object_id=card.ref[:64],
            payload={"name": card.name, "version": card.version, "sha256": row.sha256, **proof},
        )
        return model_item(row), 201


def _known(card: ModelCard) -> bool:
    query = select(ModelVersion.id).where(
        ModelVersion.name == card.name, ModelVersion.version == card.version
    )
    with session_scope(services().sessions) as session:
        return session.scalars(query).first() is not None


def _part(name: str) -> FileStorage:
    part = request.files.get(name)
    if part is None:
        raise ApiError(
            "VALIDATION_ERROR", f"the multipart field {name} is required", 400, {"field": name}
        )
    return part


def _card(data: bytes) -> ModelCard:
    if len(data) > MAX_CARD_BYTES:
        raise _invalid("model.json is too large", "model.json")
    try:
        card = ModelCard.from_dict(json.loads(data))
    except (ValueError, AttributeError):
        raise _invalid("model.json is not a JSON object", "model.json") from None
    except ModelError as exc:
        raise _invalid(str(exc), exc.field) from None
    for field, value in (("name", card.name), ("version", card.version)):
        if not SEGMENT.fullmatch(value) or value in (".", ".."):
            raise _invalid(f"{field} may hold letters, digits, '.', '_' and '-' only", field)
    return card


def _install(
    store: ModelStore, card: ModelCard, graph: FileStorage, card_bytes: bytes
) -> dict[str, str]:
    """Stage, check and publish the version; what its allowances measured (for the audit)."""
    staging, version_dir = staged_version(store, card.name, card.version)
    try:
        with open(version_dir / "model.onnx", "wb") as out:
            shutil.copyfileobj(graph.stream, out, 1024 * 1024)
        (version_dir / "model.json").write_bytes(card_bytes)
        proof = _prove_allowances(_check_loads(staging, card))
        try:
            store.publish(version_dir, card.name, card.version)
        except ModelVersionExists:
            raise _exists(card) from None  # another upload of this version won the race
        return proof
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _repository(root: Path) -> Any:
    # Imported on use: loading checks the graph with ONNX, which the rest of the API never needs.
    from pipeline.repository import ModelRepository

    return ModelRepository(root)


def _check_loads(staging: Path, card: ModelCard) -> LoadedModel:
    try:
        return _repository(staging).load(card.ref)
    except ModelError as exc:
        raise _invalid(str(exc), exc.field) from None


def _prove_allowances(model: LoadedModel) -> dict[str, str]:
    """Run the reduced-JPEG-2000 check on the request's probes when the card claims it."""
    if model.card.preprocess.reduced_jpeg2000_tolerance is None:
        return {}
    from pipeline.reduced_check import FIELD, check_reduced_jpeg2000

    probes = request.files.getlist("probe")
    if not probes or len(probes) > MAX_PROBES:
        raise _invalid(
            f"the card allows reduced JPEG 2000 decoding: attach 1 to {MAX_PROBES} JPEG 2000 "
            "DICOM images as 'probe' parts, larger than twice the model's input, to prove "
            "its tolerance",
            FIELD,
        )
    images = [probe.stream.read(MAX_PROBE_BYTES + 1) for probe in probes]
    if any(len(image) > MAX_PROBE_BYTES for image in images):
        raise _invalid(f"a probe image is over {MAX_PROBE_BYTES} bytes", FIELD)
    try:
        change = check_reduced_jpeg2000(model, images)  # audit payloads hold no floats
        return {"reduced_jpeg2000_change": f"{change:.6f}"}
    except ModelError as exc:
        raise _invalid(str(exc), exc.field) from None


def _invalid(message: str, field: str | None) -> ApiError:
    return ApiError("INVALID_MODEL", message, 422, {"field": field})


def _exists(card: ModelCard) -> ApiError:
    return ApiError(
        "MODEL_VERSION_EXISTS", "this model version is already registered", 409, {"model": card.ref}
    )
