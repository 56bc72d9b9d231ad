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
