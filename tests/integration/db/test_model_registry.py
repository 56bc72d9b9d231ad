"""db.model_registry on SQLite and Postgres: sync from a repository, find by reference."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.model_registry import ModelNotFound, find_model, sync_models
from db.models import AuditEvent, ModelVersion
from db.session import session_scope
from pipeline.card import ModelCard

Factory = sessionmaker[Session]


def card(name: str, version: str, sha: str = "ab") -> ModelCard:
    return ModelCard.from_dict(
        {
            "name": name,
            "version": version,
            "description": "test model",
            "input": {"name": "x", "layout": "NCHW", "channels": 1, "height": 8, "width": 8},
            "preprocess": {},
            "output": {"name": "y", "activation": "sigmoid", "labels": ["nodule"]},
            "batch_size": 1,
            "sha256": sha * 32,
        }
    )


class Repository:
    """The part of pipeline.repository.ModelRepository's contract that sync_models uses."""

    def __init__(self, *cards: ModelCard) -> None:
        self._cards = list(cards)

    def cards(self) -> list[ModelCard]:
        return self._cards

    def resolve(self, ref: str) -> tuple[str, str]:
        name, _, version = ref.partition(":")
        versions = sorted(c.version for c in self._cards if c.name == name)
        return name, version or versions[-1]


def registered(session_factory: Factory) -> list[str]:
    with session_scope(session_factory) as session:
        query = select(AuditEvent).where(AuditEvent.action == "model.registered")
        return [e.object_id for e in session.scalars(query.order_by(AuditEvent.seq))]


def test_sync_and_find(session_factory: Factory) -> None:
    repo = Repository(card("nodule", "1"), card("nodule", "2"), card("cxr", "1"))
    with session_scope(session_factory) as session:
        rows = sync_models(session, repo)
        assert sorted((r.name, r.version, r.active) for r in rows) == [
            ("cxr", "1", True),
            ("nodule", "1", False),
            ("nodule", "2", True),
        ]
        assert find_model(session, "nodule").version == "2"
        assert find_model(session, "nodule:1").card["output"]["labels"] == ["nodule"]
    with session_scope(session_factory) as session:
        sync_models(session, repo)  # a second sync changes nothing
    assert registered(session_factory) == ["nodule:1", "nodule:2", "cxr:1"]


def test_a_new_version_takes_over_and_old_rows_stay(session_factory: Factory) -> None:
    with session_scope(session_factory) as session:
        sync_models(session, Repository(card("nodule", "1")))
    with session_scope(session_factory) as session:
        sync_models(session, Repository(card("nodule", "2"), card("nodule", "1", sha="cd")))
        assert find_model(session, "nodule").version == "2"
        assert find_model(session, "nodule:1").sha256 == "cd" * 32
        assert len(session.scalars(select(ModelVersion)).all()) == 2
    assert registered(session_factory) == ["nodule:1", "nodule:2", "nodule:1"]
    with session_scope(session_factory) as session:
        sync_models(session, Repository(card("other", "1")))
        # Gone from disk: still there for old jobs, but no longer the default.
        assert not find_model(session, "nodule:2").active
        with pytest.raises(ModelNotFound):
            find_model(session, "nodule")


def test_model_not_found_lists_known_names(session_factory: Factory) -> None:
    with session_scope(session_factory) as session:
        sync_models(session, Repository(card("nodule", "1"), card("cxr", "3")))
        for ref in ("missing", "nodule:9"):
            with pytest.raises(ModelNotFound) as error:
                find_model(session, ref)
            assert error.value.code == "MODEL_NOT_FOUND"
            assert error.value.known == ["cxr", "nodule"]
