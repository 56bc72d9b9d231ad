"""Input hardening (issue 9): each of these gave a 500 or told too much before."""

from __future__ import annotations

import json

import pytest

from tests.integration.api.test_models import tiny_files, upload  # noqa: F401  (fixture)

BIG = 2**63


def error_code(response) -> str:
    return response.json["error"]["code"]


def test_a_model_name_or_version_with_a_trailing_newline_is_refused(client, keys, tiny_files):  # noqa: F811
    graph, card = tiny_files
    admin = keys.auth("admin")
    for change in ({"version": "7\n"}, {"name": "tiny\n", "version": "8"}):
        response = client.post("/v1/models", data=upload(graph, {**card, **change}), headers=admin)
        assert response.status_code == 422, response.json
        assert error_code(response) == "INVALID_MODEL"
    # ... and the service goes on: registration and the list still work.
    good = client.post("/v1/models", data=upload(graph, {**card, "version": "9"}), headers=admin)
    assert good.status_code == 201, good.json
    assert client.get("/v1/models", headers=admin).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/v1/jobs/ab%00cd",
        "/v1/jobs/ab%00cd/results",
        "/v1/jobs?before=ab%00cd",
        "/v1/jobs/{job}/results?after=1%00",
        "/v1/jobs/{job}/results?format=json%00",
    ],
)
def test_nul_bytes_in_ids_and_cursors_are_400(client, keys, make_job, url):
    job = make_job(1)
    response = client.get(url.format(job=job.id), headers=keys.auth("submitter"))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_code(response) == "INVALID_PARAMETER"


def test_a_nul_byte_in_the_idempotency_key_is_400(client, keys):
    headers = {**keys.auth("submitter"), "Idempotency-Key": "k\x00ey"}
    body = json.dumps({"model": "tiny", "images": []})
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400 and error_code(response) == "INVALID_PARAMETER"


@pytest.mark.parametrize(
    ("url", "who"),
    [
        ("/v1/jobs/{job}/results?after={big}", "submitter"),
        ("/v1/jobs/{job}/results?limit={big}", "submitter"),
        ("/v1/audit/events?after_seq={big}", "auditor"),
        ("/v1/audit/events?after_seq={huge}", "auditor"),
    ],
)
def test_cursors_at_or_over_2_to_the_63_are_400(client, keys, make_job, url, who):
    job = make_job(1)
    target = url.format(job=job.id, big=BIG, huge=10**30)
    response = client.get(target, headers=keys.auth(who))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_code(response) == "INVALID_PARAMETER"


def test_before_is_resolved_within_the_callers_jobs(client, keys, make_job):
    mine = make_job(1)
    theirs = make_job(1, owner="other")
    auth = keys.auth("submitter")
    # Another owner's job id gives the same answer as an unknown id: nothing to learn.
    for cursor in (theirs.id, "0" * 32):
        page = client.get(f"/v1/jobs?before={cursor}", headers=auth).json
        assert page["items"] == [], cursor
    assert client.get(f"/v1/jobs?before={mine.id}", headers=auth).status_code == 200


def test_nul_in_a_json_model_or_image_is_a_400(client, keys):
    # Found by schemathesis (tests/integration/api/test_schema_fuzz.py): a 500 on Postgres.
    auth = keys.auth("submitter")
    bodies = [
        ({"model": "ti\x00ny", "images": [{"uri": "file:///x"}]}, "model"),
        ({"model": "tiny", "images": [{"uri": "file:///x", "ref": "a\x00b"}]}, "images"),
        ({"model": "tiny", "images": [{"uri": "file:///x\x00"}]}, "images"),
    ]
    for body, field in bodies:
        response = client.post("/v1/jobs", json=body, headers=auth)
        assert response.status_code == 400, response.json
        assert response.json["error"]["details"] == {"parameter": field}
    infer = client.post("/v1/infer", json={"model": "ti\x00ny", "uri": "file:///x"}, headers=auth)
    assert infer.status_code == 400 and infer.json["error"]["code"] == "INVALID_PARAMETER"
