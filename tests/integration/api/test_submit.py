"""Submitting jobs: multipart uploads, JSON URIs, open + fill + seal, idempotent replays.

What reaches the workers is read back from the Redis list ``infer.<model>``: ids and blob keys
only, sent once, and only after the rows were committed.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.models import Image, ImageStatus, Job, JobStatus
from db.session import session_scope
from tests.integration.api.conftest import MODEL, PNG, sent_chunks


def upload(*files: tuple[bytes, str], model: str = MODEL, seal: str | None = None) -> dict:
    data: dict[str, Any] = {"model": model, "files": [(io.BytesIO(b), n) for b, n in files]}
    if seal is not None:
        data["seal"] = seal
    return data


def test_multipart_submission_stores_seals_and_enqueues(client, keys, redis_client, sessions):
    files = [(PNG + b"1", "a.png"), (PNG + b"2", "b.png"), (b"not an image", "c.bin")]
    response = client.post("/v1/jobs", data=upload(*files), headers=keys.auth("submitter"))

    assert response.status_code == 202, response.json
    body = response.json
    assert response.headers["Location"] == body["url"] == f"/v1/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert body["counts"]["total"] == 3
    # An unknown format is accepted here and becomes a failed result later.
    assert body["formats"] == {"png": 2, "unknown": 1}
    chunks = sent_chunks(redis_client)
    assert [c["task"] for c in chunks] == ["medflow.infer_chunk"] * 2  # chunk_size=2
    sent = [item for c in chunks for item in c["args"][2]]
    pinned = f"{MODEL}:1@{job_sha256(sessions, body['id'])}"
    assert all(c["args"][:2] == [body["id"], pinned] for c in chunks)
    with session_scope(sessions) as session:
        images = session.scalars(select(Image).order_by(Image.position)).all()
        assert [[i.id, i.blob_key] for i in images] == sent
        assert [i.ref for i in images] == ["a.png", "b.png", "c.bin"]
    assert sent[0][1] == hashlib.sha256(PNG + b"1").hexdigest()
    # Refs never travel to the workers.
    assert all(b"a.png" not in raw for raw in redis_client.lrange(f"infer.{MODEL}", 0, -1))


def test_tasks_are_sent_only_after_the_rows_are_committed(app, client, keys, sessions):
    seen: list[tuple[str, Any]] = []
    original = app.extensions["medflow"].celery.send_task

    def spy(name: str, args: list[Any], **options: Any) -> Any:
        # Another connection sees only committed rows.
        with session_scope(sessions) as session:
            job = session.get(Job, args[0])
            ids = [image_id for image_id, _ in args[2]]
            found = session.scalars(select(Image.id).where(Image.id.in_(ids))).all()
            seen.append((job.status if job else None, sorted(found) == sorted(ids)))
        return original(name, args=args, **options)

    app.extensions["medflow"].celery.send_task = spy
    response = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=keys.auth("submitter"))
    assert response.status_code == 202
    assert seen == [(JobStatus.QUEUED, True)]


def test_json_uris_are_imported(client, keys, api_settings, redis_client):
    root = api_settings.import_roots[0]
    (root / "x.png").write_bytes(PNG + b"x")
    images = [{"uri": f"file://{root / 'x.png'}", "ref": "study-1"}]
    response = client.post(
        "/v1/jobs", json={"model": MODEL, "images": images}, headers=keys.auth("submitter")
    )
    assert response.status_code == 202, response.json
    assert response.json["counts"]["total"] == 1
    [chunk] = sent_chunks(redis_client)
    assert chunk["args"][2][0][1] == hashlib.sha256(PNG + b"x").hexdigest()


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("file:///etc/passwd", "IMPORT_REFUSED"),
        ("http://example.org/a.png", "UNSUPPORTED_URI_SCHEME"),
        ("file://{root}/missing.png", "IMPORT_NOT_FOUND"),
    ],
)
def test_refused_uri_is_422_naming_its_index(client, keys, api_settings, redis_client, uri, code):
    root = api_settings.import_roots[0]
    (root / "ok.png").write_bytes(PNG)
    images = [{"uri": f"file://{root / 'ok.png'}"}, {"uri": uri.format(root=root)}]
    response = client.post(
        "/v1/jobs", json={"model": MODEL, "images": images}, headers=keys.auth("submitter")
    )
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == code
    assert error["details"]["index"] == 1
    assert "passwd" not in error["message"] and "missing" not in error["message"]
    assert sent_chunks(redis_client) == []


def test_open_fill_then_seal(client, keys, redis_client, sessions):
    auth = keys.auth("submitter")
    opened = client.post("/v1/jobs", json={"model": MODEL, "seal": False}, headers=auth)
    assert opened.status_code == 202, opened.json
    assert opened.json["status"] == "open"
    url = opened.json["url"]

    files = {"files": [(io.BytesIO(PNG), "a.png"), (io.BytesIO(PNG + b"\0"), "b.png")]}
    added = client.post(f"{url}/images", data=files, headers=auth)
    assert added.status_code == 200, added.json
    assert added.json["added"] == 2
    # Sent at once, before the seal, so the job runs while the client uploads the rest.
    first = sent_chunks(redis_client)
    assert [(m["task"], m["args"][0], len(m["args"][2])) for m in first] == [
        ("medflow.infer_chunk", opened.json["id"], 2)
    ]
    digests = [hashlib.sha256(data).hexdigest() for data in (PNG, PNG + b"\0")]
    assert [blob for _, blob in first[0]["args"][2]] == digests

    sealed = client.post(f"{url}/seal", headers=auth)
    assert sealed.status_code == 200
    assert sealed.json["status"] == "queued"
    assert sent_chunks(redis_client) == first  # the seal sends nothing twice

    again = client.post(f"{url}/images", data={"files": [(io.BytesIO(PNG), "c.png")]}, headers=auth)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "JOB_NOT_OPEN"
    assert client.post(f"{url}/seal", headers=auth).json["error"]["code"] == "JOB_NOT_OPEN"


def test_unsealed_multipart_job_is_sent_once(client, keys, redis_client):
    data = upload((PNG, "a.png"), seal="false")
    response = client.post("/v1/jobs", data=data, headers=keys.auth("submitter"))
    assert response.status_code == 202
    assert response.json["status"] == "open"
    assert [m["args"][0] for m in sent_chunks(redis_client)] == [response.json["id"]]
    client.post(f"{response.json['url']}/seal", headers=keys.auth("submitter"))
    assert len(sent_chunks(redis_client)) == 1


def test_empty_job_cannot_be_sealed(client, keys):
    auth = keys.auth("submitter")
    response = client.post("/v1/jobs", json={"model": MODEL}, headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "NO_IMAGES"
    opened = client.post("/v1/jobs", json={"model": MODEL, "seal": False}, headers=auth)
    sealed = client.post(f"{opened.json['url']}/seal", headers=auth)
    assert sealed.status_code == 409
    assert sealed.json["error"]["code"] == "JOB_EMPTY"


def test_idempotent_resubmission_returns_the_same_job_and_enqueues_once(
    client, keys, redis_client, sessions
):
    headers = {**keys.auth("submitter"), "Idempotency-Key": "batch-42"}
    first = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=headers)
    second = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=headers)

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json["id"] == first.json["id"]
    assert second.headers["Location"] == first.headers["Location"]
    assert len(sent_chunks(redis_client)) == 1
    with session_scope(sessions) as session:
        assert session.scalars(select(Image)).all().__len__() == 1
    # The key is per caller: another submitter's identical key opens its own job.
    other = {**keys.auth("other"), "Idempotency-Key": "batch-42"}
    third = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=other)
    assert third.status_code == 202
    assert third.json["id"] != first.json["id"]


def test_unknown_model_is_404_and_stores_nothing(client, keys, redis_client, api_settings):
    response = client.post(
        "/v1/jobs", data=upload((PNG, "a.png"), model="nope:9"), headers=keys.auth("submitter")
    )
    assert response.status_code == 404
    assert response.json["error"]["code"] == "MODEL_NOT_FOUND"
    assert sent_chunks(redis_client) == []
    assert not list(Path(api_settings.blob_url.removeprefix("file://")).glob("*/*"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"images": []}, "model"),
        ({"model": MODEL, "images": "a.png"}, "images"),
        ({"model": MODEL, "images": [{"ref": "x"}]}, "images"),
        ({"model": MODEL, "seal": "maybe"}, "seal"),
    ],
)
def test_invalid_bodies_are_400_with_the_field(client, keys, body, field):
    response = client.post("/v1/jobs", json=body, headers=keys.auth("submitter"))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert response.json["error"]["details"]["field"] == field


def test_cancel_flags_workers_and_cancels_pending_images(
    client, keys, make_job, redis_client, sessions
):
    job = make_job(3)
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=keys.auth("operator"))
    assert response.status_code == 200
    assert response.json["status"] == "cancelled"
    assert response.json["counts"]["cancelled"] == 3
    assert redis_client.get(f"medflow:cancelled:{job.id}") == b"1"
    assert 0 < redis_client.ttl(f"medflow:cancelled:{job.id}") <= 7 * 24 * 3600
    with session_scope(sessions) as session:
        statuses = set(session.scalars(select(Image.status).where(Image.job_id == job.id)))
        assert statuses == {ImageStatus.CANCELLED}
    again = client.post(f"/v1/jobs/{job.id}/cancel", headers=keys.auth("operator"))
    assert again.status_code == 409
    assert again.json["error"]["code"] == "JOB_ALREADY_FINISHED"


def test_json_images_fill_an_open_job(client, keys, api_settings, redis_client):
    root = api_settings.import_roots[0]
    (root / "y.png").write_bytes(PNG + b"y")
    auth = keys.auth("submitter")
    opened = client.post("/v1/jobs", json={"model": MODEL, "seal": False}, headers=auth).json
    images = [{"uri": f"file://{root / 'y.png'}"}]
    added = client.post(f"{opened['url']}/images", json={"images": images}, headers=auth)
    assert added.status_code == 200, added.json
    assert added.json["counts"]["total"] == 1
    assert client.post(f"{opened['url']}/seal", headers=auth).status_code == 200
    assert len(sent_chunks(redis_client)) == 1


def job_sha256(sessions: Any, job_id: str) -> str:
    """The registry's sha256 the job keeps: its chunks name the model pinned to it."""
    with session_scope(sessions) as session:
        return str(session.get(Job, job_id).model_sha256)
