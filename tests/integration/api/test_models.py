"""Models: the list with cards, and registration of a new version (validated before it appears)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import AuditEvent
from db.session import session_scope


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict]:
    pytest.importorskip("pipeline.repository")  # registration validates with its loader
    from models.build import build_models

    root = tmp_path_factory.mktemp("tiny-src")
    [written] = build_models(root, ["tiny"])
    folder = Path(written.path).parent if Path(written.path).is_file() else Path(written.path)
    card = json.loads((folder / "model.json").read_text())
    return (folder / "model.onnx").read_bytes(), card


def upload(graph: bytes, card: dict | bytes) -> dict:
    raw = card if isinstance(card, bytes) else json.dumps(card).encode()
    return {
        "model.onnx": (io.BytesIO(graph), "model.onnx"),
        "model.json": (io.BytesIO(raw), "model.json"),
    }


def test_list_models_with_cards(client, keys):
    body = client.get("/v1/models", headers=keys.auth("submitter")).json
    [model] = body["items"]
    assert (model["name"], model["version"], model["active"]) == ("tiny", "1", True)
    assert model["card"]["output"]["labels"] == ["A", "B", "C"]


def test_register_a_new_version(client, keys, api_settings, sessions, tiny_files):
    graph, card = tiny_files
    card = {**card, "version": "2"}
    response = client.post("/v1/models", data=upload(graph, card), headers=keys.auth("admin"))

    assert response.status_code == 201, response.json
    assert (response.json["name"], response.json["version"]) == ("tiny", "2")
    assert response.json["sha256"] == card["sha256"]
    assert (api_settings.model_root / "tiny" / "2" / "model.onnx").read_bytes() == graph
    listed = client.get("/v1/models", headers=keys.auth("admin")).json["items"]
    assert {m["version"] for m in listed} == {"1", "2"}
    with session_scope(sessions) as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"model.registered", "model.uploaded"} <= actions

    again = client.post("/v1/models", data=upload(graph, card), headers=keys.auth("admin"))
    assert again.status_code == 409
    assert again.json["error"]["code"] == "MODEL_VERSION_EXISTS"


def test_a_version_known_to_the_database_is_refused(client, keys, tiny_files):
    graph, card = tiny_files  # tiny:1 is a row (the env's model), though not on disk
    response = client.post("/v1/models", data=upload(graph, card), headers=keys.auth("admin"))
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sha256": "0" * 64}, None),
        ({"version": "../../etc"}, "version"),
        ({"output": {"name": "logits", "activation": "magic", "labels": ["A"]}}, None),
    ],
)
def test_invalid_models_are_422_and_leave_nothing(
    client, keys, api_settings, tiny_files, change, field
):
    graph, card = tiny_files
    bad = {**card, "version": "3", **change}
    response = client.post("/v1/models", data=upload(graph, bad), headers=keys.auth("admin"))
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "INVALID_MODEL"
    if field:
        assert response.json["error"]["details"]["field"] == field
    assert list(api_settings.model_root.iterdir()) == []  # no version, no staging left


def test_card_that_is_not_json_is_422(client, keys, tiny_files):
    graph, _card = tiny_files
    response = client.post("/v1/models", data=upload(graph, b"{nope"), headers=keys.auth("admin"))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "INVALID_MODEL"


def test_a_graph_that_disagrees_with_its_card_is_422(client, keys, api_settings, tiny_files):
    _graph, card = tiny_files
    garbage = b"not an onnx graph"
    bad = {**card, "version": "4", "sha256": hashlib.sha256(garbage).hexdigest()}
    response = client.post("/v1/models", data=upload(garbage, bad), headers=keys.auth("admin"))
    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "model"
    assert list(api_settings.model_root.iterdir()) == []
