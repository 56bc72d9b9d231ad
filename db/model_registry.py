"""The models the service knows: ModelVersion rows mirrored from the model repository on disk.

The repository (pipeline.repository.ModelRepository) is the truth about which models exist;
the rows let jobs name a model and let the API list them without touching the disk. A job
keeps the model's sha256 of its own, so a later sync never changes what a job ran.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.audit import append_event
from db.models import ModelVersion, utcnow

REGISTRY = "service:model_registry"


class ModelNotFound(LookupError):
    code = "MODEL_NOT_FOUND"

    def __init__(self, ref: str, known: list[str]) -> None:
        super().__init__(f"no model {ref!r}; known models: {', '.join(known) or 'none'}")
        self.ref = ref
        self.known = known


class Repository(Protocol):
    """What sync_models needs of pipeline.repository.ModelRepository."""

    def cards(self) -> list[Any]: ...  # ModelCard: .name, .version, .sha256, .to_dict()

    def resolve(self, ref: str) -> tuple[str, str]: ...


def sync_models(session: Session, repository: Repository) -> list[ModelVersion]:
    """Upsert one row per model version on disk; the repository's default version is active."""
    cards = list(repository.cards())
    rows = [_upsert(session, card) for card in cards]
    active = {repository.resolve(name) for name in {card.name for card in cards}}
    for row in session.scalars(select(ModelVersion)):
        # Versions no longer on disk stay (old jobs name them) but cannot be chosen by default.
        row.active = (row.name, row.version) in active
    session.flush()
    return rows


def _upsert(session: Session, card: Any) -> ModelVersion:
    row = _get(session, card.name, card.version)
    if row is None:
        row = ModelVersion(name=card.name, version=card.version, registered_at=utcnow())
        row.sha256, row.card, row.active = card.sha256, card.to_dict(), False
        try:
            # Two processes may sync at start-up: the loser re-reads the winner's row.
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            row = _get(session, card.name, card.version)
            if row is None:
                raise
            return row
        _registered(session, row)
    elif row.sha256 != card.sha256 or row.card != card.to_dict():
        changed = row.sha256 != card.sha256
        row.sha256, row.card = card.sha256, card.to_dict()
        if changed:
            _registered(session, row)
    return row


def _get(session: Session, name: str, version: str) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    return session.scalars(query).one_or_none()


def _registered(session: Session, row: ModelVersion) -> None:
    session.flush()
    append_event(
        session,
        actor=REGISTRY,
        action="model.registered",
        object_type="model",
        object_id=row.ref[:64],
        payload={"name": row.name, "version": row.version, "sha256": row.sha256},
    )


def find_model(session: Session, ref: str) -> ModelVersion:
    """``name:version``, or ``name`` for its active version; else ModelNotFound."""
    name, _, version = ref.partition(":")
    query = select(ModelVersion).where(ModelVersion.name == name)
    if version:
        query = query.where(ModelVersion.version == version)
    else:
        query = query.where(ModelVersion.active.is_(True))
    row = session.scalars(query).first()
    if row is None:
        known = session.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name))
        raise ModelNotFound(ref, list(known))
    return row
