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


@pytest.fixture(scope="module")
def jpeg2000_probe() -> bytes:
    """One generated 1024 x 1248 JPEG 2000 chest (reduced two levels for tiny's input)."""
    from bench.synthetic import render_chest
    from bench.writers import encode

    return encode(render_chest(5, 1, 1024, 1248, True)[0], "dicom-m2-s16-j2k", seed=5, index=1)


def allowing(card: dict, version: str, tolerance: float) -> dict:
    preprocess = {**card["preprocess"], "reduced_jpeg2000_tolerance": tolerance}
    return {**card, "version": version, "preprocess": preprocess}


def test_a_reduced_jpeg2000_allowance_is_proven_on_the_probes(
    client, keys, sessions, tiny_files, jpeg2000_probe
):
    graph, card = tiny_files
    data = {**upload(graph, allowing(card, "4", 1.0)), "probe": (io.BytesIO(jpeg2000_probe), "p")}
    response = client.post("/v1/models", data=data, headers=keys.auth("admin"))
    assert response.status_code == 201, response.json
    with session_scope(sessions) as session:
        payloads = session.scalars(
            select(AuditEvent.payload).where(AuditEvent.action == "model.uploaded")
        ).all()
    [measured] = [float(p["reduced_jpeg2000_change"]) for p in payloads if p["version"] == "4"]
    assert 0 < measured <= 1.0  # > 0: the probe was decoded both ways, and they differ


@pytest.mark.parametrize("with_probe", [False, True], ids=["no probe", "tolerance too tight"])
def test_an_unproven_reduced_jpeg2000_allowance_is_422(
    client, keys, api_settings, tiny_files, jpeg2000_probe, with_probe
):
    graph, card = tiny_files
    data = upload(graph, allowing(card, "5", 1e-6))
    if with_probe:
        data["probe"] = (io.BytesIO(jpeg2000_probe), "p")
    response = client.post("/v1/models", data=data, headers=keys.auth("admin"))
    assert response.status_code == 422, response.json
    assert response.json["error"]["details"]["field"] == "preprocess.reduced_jpeg2000_tolerance"
    assert ("over the card's tolerance" in response.json["error"]["message"]) is with_probe
    assert not (api_settings.model_root / "tiny" / "5").exists()
