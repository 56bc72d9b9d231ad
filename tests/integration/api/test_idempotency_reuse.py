"""Idempotency keys (issue 9): a different request with a used key is 422, and the stored key is
a keyed hash, never the client's text.

Before, a replay with another body silently returned the old job, and the job row (and so a
Postgres log line on a duplicate-key race) held the client's key as sent.
"""

from __future__ import annotations

import io

from sqlalchemy import select

from db.models import Job
from db.session import session_scope
from tests.integration.api.conftest import MODEL
from tests.integration.api.test_submit import PNG, upload

KEY = "ACC-20240501-778812"  # a key a hospital system might derive from an accession number


def test_a_used_key_with_another_request_is_422(client, keys):
    headers = {**keys.auth("submitter"), "Idempotency-Key": KEY}
    first = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=headers)
    assert first.status_code == 202, first.json
    same = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=headers)
    assert (same.status_code, same.json["id"]) == (200, first.json["id"])
    for changed in (
        upload((PNG, "b.png")),  # another file list
        upload((PNG, "a.png"), (PNG, "c.png")),
        upload((PNG, "a.png"), seal="false"),
    ):
        response = client.post("/v1/jobs", data=changed, headers=headers)
        assert response.status_code == 422, response.json
        assert response.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert response.json["error"]["details"]["job_id"] == first.json["id"]


def test_the_stored_key_is_a_keyed_hash(client, keys, sessions):
    headers = {**keys.auth("submitter"), "Idempotency-Key": KEY}
    job_id = client.post("/v1/jobs", data=upload((PNG, "a.png")), headers=headers).json["id"]
    with session_scope(sessions) as session:
        stored = session.scalars(select(Job.idempotency_key).where(Job.id == job_id)).one()
    assert KEY not in stored and "778812" not in stored and len(stored) == 64


def test_infer_keys_follow_the_same_rule(client, keys):
    # POST /v1/infer is a one-image job: a retry gets its job, another image with the key is 422.
    headers = {**keys.auth("submitter"), "Idempotency-Key": KEY}

    def infer(name):
        data = {"file": (io.BytesIO(PNG), name), "model": MODEL, "timeout_s": "0.05"}
        return client.post("/v1/infer", data=data, headers=headers)

    first = infer("a.png")  # no worker here: 202 past the timeout
    assert first.status_code == 202, first.json
    again = infer("a.png")
    assert (again.status_code, again.json["id"]) == (202, first.json["id"])
    other = infer("b.png")
    assert other.status_code == 422, other.json
    assert other.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert other.json["error"]["details"]["job_id"] == first.json["id"]
