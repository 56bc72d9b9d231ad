"""Audit endpoints: verifying the chain (itself audited) and paging through its events."""

from __future__ import annotations


def test_verify_reports_an_intact_chain_and_is_recorded(client, keys, make_job):
    make_job(2)
    auth = keys.auth("auditor")
    report = client.get("/v1/audit/verify", headers=auth).json
    assert report["ok"] is True and report["first_bad_seq"] is None
    assert report["events"] == report["head_seq"] > 0

    events = client.get(f"/v1/audit/events?after_seq={report['head_seq']}", headers=auth).json
    [event] = events["items"]
    assert event["action"] == "audit.verified"
    assert event["actor"] == f"key:{keys.ids['auditor']}"
    assert event["payload"] == {"ok": True, "events": report["events"]}
    # The next verification covers the event the last one left.
    assert client.get("/v1/audit/verify", headers=auth).json["head_seq"] == event["seq"]


def test_events_page_in_chain_order(client, keys, make_job):
    make_job(1)
    make_job(1)
    auth = keys.auth("admin")
    seen, url = [], "/v1/audit/events?limit=3"
    while url:
        page = client.get(url, headers=auth).json
        seen += [event["seq"] for event in page["items"]]
        url = page["next"]
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) > 3
    first = client.get("/v1/audit/events?limit=1", headers=auth).json["items"][0]
    assert set(first) >= {"seq", "occurred_at", "actor", "action", "payload", "prev_hash", "hash"}


def test_verify_checks_the_saved_anchors(env, make_job, tmp_path):
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from api.app import create_app
    from db.anchor_keys import public_text
    from db.anchors import sign_head, write_anchor

    anchors = tmp_path / "anchors"
    anchors.mkdir()
    signing = Ed25519PrivateKey.generate()
    verify_key = public_text(signing.public_key())
    settings = replace(env.settings, audit_anchors=str(anchors), anchor_verify_key=verify_key)
    client = create_app(settings).test_client()
    auth = env.keys.auth("auditor")
    make_job(2)
    head = client.get("/v1/audit/verify", headers=auth).json
    assert head["ok"] is True  # no anchors saved yet is not an error

    now = datetime.now(UTC)
    write_anchor(sign_head(head["head_seq"], head["head_hash"], now, signing), anchors)
    assert client.get("/v1/audit/verify", headers=auth).json["ok"] is True

    # A consistent rewrite of the whole chain keeps every link valid; only an anchor made with
    # the deployment key can tell. Here the anchor vouches for a head the chain no longer has.
    forged = sign_head(head["head_seq"], "0" * 64, now + timedelta(seconds=1), signing)
    write_anchor(forged, anchors)
    report = client.get("/v1/audit/verify", headers=auth).json
    assert report["ok"] is False
    assert report["reason"] == "anchor_mismatch"
    assert report["first_bad_seq"] == head["head_seq"]


def test_verify_reports_a_junk_anchor_file_instead_of_failing(env, make_job, tmp_path):
    from dataclasses import replace

    from api.app import create_app

    anchors = tmp_path / "anchors"
    anchors.mkdir()
    (anchors / "anchor-junk.json").write_text("this is not an anchor\n")
    client = create_app(replace(env.settings, audit_anchors=str(anchors))).test_client()
    make_job(1)
    response = client.get("/v1/audit/verify", headers=env.keys.auth("auditor"))
    assert response.status_code == 200  # before: 500 (an unhandled JSONDecodeError)
    assert (response.json["ok"], response.json["reason"]) == (False, "anchor_unreadable")
    assert "anchor-junk.json" in response.json["detail"]
