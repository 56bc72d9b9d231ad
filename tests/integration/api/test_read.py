"""Reading jobs and results: listing and its cursor, one job, result pages, the CSV export, and
the audit events that every read of results leaves."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from db.models import AuditEvent
from db.session import session_scope


def test_jobs_list_newest_first_with_a_next_cursor(client, keys, make_job):
    mine = [make_job(1).id for _ in range(5)]
    make_job(1, owner="other")
    auth = keys.auth("submitter")

    first = client.get("/v1/jobs?limit=2", headers=auth).json
    assert [j["id"] for j in first["items"]] == mine[::-1][:2]
    second = client.get(first["next"], headers=auth).json
    third = client.get(second["next"], headers=auth).json
    seen = [j["id"] for page in (first, second, third) for j in page["items"]]
    assert seen == mine[::-1]  # a submitter never sees the other's job
    assert third["next"] is None

    everything = client.get("/v1/jobs?limit=50", headers=keys.auth("operator")).json
    assert len(everything["items"]) == 6


def test_show_job(client, keys, make_job, finish):
    job = make_job(3)
    finish(job.id, fail_first=True)
    body = client.get(f"/v1/jobs/{job.id}", headers=keys.auth("submitter")).json
    assert body["id"] == job.id and body["url"] == f"/v1/jobs/{job.id}"
    assert body["status"] == "completed_with_errors"
    assert body["counts"] == {"total": 3, "succeeded": 2, "failed": 1, "pending": 0, "cancelled": 0}
    assert body["model"]["name"] == "tiny"


def test_unknown_job_is_404(client, keys):
    response = client.get("/v1/jobs/nope", headers=keys.auth("admin"))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "JOB_NOT_FOUND"


def test_results_pages_with_keyset_cursor(client, keys, make_job, finish, sessions):
    job = make_job(5)
    finish(job.id, fail_first=True)
    auth = keys.auth("submitter")

    pages, url = [], f"/v1/jobs/{job.id}/results?limit=2"
    while url:
        page = client.get(url, headers=auth).json
        pages.append(page["items"])
        url = page["next"]
    assert [len(p) for p in pages] == [2, 2, 1]
    items = [item for page in pages for item in page]
    assert [i["position"] for i in items] == [0, 1, 2, 3, 4]
    failed, ok = items[0], items[1]
    assert failed["status"] == "failed" and failed["error_code"] == "UNKNOWN_FORMAT"
    assert ok["status"] == "succeeded"
    assert ok["ref"] == "scan-1.png"
    assert ok["scores"] == {"A": 0.9, "B": 0.1, "C": 0.5}
    assert ok["positive"] == ["A", "C"]
    assert (ok["format"], ok["width"], ok["height"]) == ("png", 64, 64)
    assert ok["pseudonyms"] == {"patient_pseudonym": "p" * 32}
    assert len(ok["sha256"]) == 64 and ok["timings_ms"] == {"decode": 1.0}

    with session_scope(sessions) as session:
        reads = session.scalars(select(AuditEvent).where(AuditEvent.action == "results.read"))
        payloads = [e.payload for e in reads]
    assert payloads == [{"job_id": job.id, "count": n} for n in (2, 2, 1)]
    assert all("scan" not in str(p) for p in payloads)  # no refs in the chain


def test_csv_export_streams_every_row(client, keys, make_job, finish, sessions, monkeypatch):
    from api.blueprints import job_read

    monkeypatch.setattr(job_read, "CSV_PAGE", 2)  # several pages, several sessions
    job = make_job(5)
    finish(job.id, fail_first=True)
    response = client.get(f"/v1/jobs/{job.id}/results?format=csv", headers=keys.auth("admin"))

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["position"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[0]["status"] == "failed" and rows[0]["error_code"] == "UNKNOWN_FORMAT"
    assert rows[1]["score:A"] == "0.9" and rows[1]["positive"] == "A;C"
    assert rows[1]["pseudonyms"] == f"patient_pseudonym={'p' * 32}"
    with session_scope(sessions) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "results.exported")
        ).one()
        assert event.payload == {"job_id": job.id, "count": 5}
        assert event.actor == f"key:{keys.ids['admin']}"


def test_csv_neutralises_formulas_in_refs(client, keys, env, sessions):
    auth = keys.auth("submitter")
    files = {"model": "tiny", "files": [(io.BytesIO(b"x"), "=HYPERLINK(1)")]}
    job = client.post("/v1/jobs", data=files, headers=auth).json
    text = client.get(f"{job['url']}/results?format=csv", headers=auth).get_data(as_text=True)
    assert "'=HYPERLINK(1)" in text


def test_bad_paging_parameters_are_400(client, keys, make_job):
    job = make_job(1)
    auth = keys.auth("submitter")
    for url in (
        f"/v1/jobs/{job.id}/results?limit=0",
        f"/v1/jobs/{job.id}/results?after=x",
        f"/v1/jobs/{job.id}/results?format=xml",
        "/v1/jobs?limit=100000",
    ):
        response = client.get(url, headers=auth)
        assert response.status_code == 400, url
        assert response.json["error"]["code"] == "INVALID_PARAMETER"
