"""Result receipts: a client checks a result with the receipt and the public key alone.

The check below is written from docs/trust.md with hashlib, json and cryptography only (none of
MedFlow's code), as a client would: it must pass for the served results, and fail for a row
changed in the database afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text

from api.app import create_app
from db.anchor_keys import public_text
from db.anchors import sign_head, write_anchor
from db.audit import verify_chain
from db.session import session_scope

ANCHOR_PURPOSE = b"medflow.audit.anchor.v2\n"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def client_check(result: dict[str, Any], public_key_b64: str) -> bool:
    """docs/trust.md, "Checking one result": every step a client can do without our database."""
    receipt = result["receipt"]
    payload = receipt["event"]["payload"]
    scores = result["scores"]
    digest = None if scores is None else hashlib.sha256(canonical(scores)).hexdigest()
    describes = (
        receipt["event"]["action"] == "image.result"
        and payload["image_id"] == result["image_id"]
        and payload["input_sha256"] == result["sha256"]
        and payload["status"] == result["status"]
        and payload["output_digest"] == digest
    )
    chained = hashlib.sha256(
        bytes.fromhex(receipt["prev_hash"]) + canonical(receipt["event"])
    ).hexdigest()
    anchor = receipt["anchor"]
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    signed = {"seq": anchor["seq"], "hash": anchor["hash"], "at": anchor["at"]}
    try:
        key.verify(bytes.fromhex(anchor["signature"]), ANCHOR_PURPOSE + canonical(signed))
    except InvalidSignature:
        return False
    return describes and chained == receipt["hash"] and anchor["seq"] >= receipt["seq"]


def test_receipts_check_with_the_public_key_alone(env, make_job, finish, tmp_path):
    signing = Ed25519PrivateKey.generate()
    public = public_text(signing.public_key())
    anchors = tmp_path / "anchors"
    settings = replace(env.settings, audit_anchors=f"{anchors}/", anchor_verify_key=public)
    client = create_app(settings).test_client()
    auth = env.keys.auth("submitter")
    job = make_job(3)
    finish(job.id, fail_first=True)
    pending = make_job(1)

    url = f"/v1/jobs/{job.id}/results?receipts=true"
    unanchored = client.get(url, headers=auth).json["items"]
    assert all(item["receipt"]["anchor"] is None for item in unanchored)
    with session_scope(env.sessions) as session:
        head = verify_chain(session)
    write_anchor(sign_head(head.head_seq, head.head_hash, datetime.now(UTC), signing), anchors)

    items = client.get(url, headers=auth).json["items"]
    assert [item["status"] for item in items] == ["failed", "succeeded", "succeeded"]
    assert all(client_check(item, public) for item in items)
    assert not client_check(items[1], public_text(Ed25519PrivateKey.generate().public_key()))
    waiting = client.get(f"/v1/jobs/{pending.id}/results?receipts=1", headers=auth).json
    assert waiting["items"][0]["receipt"] is None
    plain = client.get(f"/v1/jobs/{job.id}/results", headers=auth).json["items"]
    assert all("receipt" not in item for item in plain)

    with session_scope(env.sessions) as session:  # a row changed behind the API's back
        session.execute(
            text("UPDATE images SET scores = :s WHERE id = :i"),
            {"s": json.dumps({"A": 0.01, "B": 0.1, "C": 0.5}), "i": items[1]["image_id"]},
        )
    changed = client.get(url, headers=auth).json["items"]
    assert not client_check(changed[1], public)
    assert client_check(changed[2], public)
