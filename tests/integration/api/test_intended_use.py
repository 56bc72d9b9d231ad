"""Every result says its model's intended use, in JSON and in CSV (issue 9).

Before, the results of the untrained demo models looked like any other result.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import update

from db.models import ModelVersion
from db.session import session_scope


def uses(client, keys, job_id):
    auth = keys.auth("submitter")
    items = client.get(f"/v1/jobs/{job_id}/results", headers=auth).json["items"]
    text = client.get(f"/v1/jobs/{job_id}/results?format=csv", headers=auth).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    return [i["intended_use"] for i in items], [r["intended_use"] for r in rows]


def test_each_result_carries_the_intended_use(client, keys, make_job, finish, env):
    job = make_job(2)
    finish(job.id)
    # The fixture's card predates the field: not clinical.
    assert uses(client, keys, job.id) == (["research"] * 2, ["research"] * 2)
    for use in ("demo", "clinical"):
        with session_scope(env.sessions) as session:
            card = {**session.get(ModelVersion, env.model_id).card, "intended_use": use}
            session.execute(update(ModelVersion).values(card=card))
        assert uses(client, keys, job.id) == ([use] * 2, [use] * 2)


def test_production_refuses_a_model_that_is_not_clinical_unless_opted_in(env, keys):
    from dataclasses import replace

    from api.app import create_app
    from tests.integration.api.test_submit import PNG, upload

    auth = keys.auth("submitter")
    production = replace(env.settings, env="production")
    refused = (
        create_app(production)
        .test_client()
        .post("/v1/jobs", data=upload((PNG, "a.png")), headers=auth)
    )
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["code"] == "MODEL_NOT_CLINICAL"
    assert refused.json["error"]["details"]["intended_use"] == "research"
    opted_in = replace(production, allow_nonclinical_models=True)
    accepted = (
        create_app(opted_in)
        .test_client()
        .post("/v1/jobs", data=upload((PNG, "a.png")), headers=auth)
    )
    assert accepted.status_code == 202, accepted.json
    with session_scope(env.sessions) as session:
        card = {**session.get(ModelVersion, env.model_id).card, "intended_use": "clinical"}
        session.execute(update(ModelVersion).values(card=card))
    clinical = (
        create_app(production)
        .test_client()
        .post("/v1/jobs", data=upload((PNG, "b.png")), headers=auth)
    )
    assert clinical.status_code == 202, clinical.json
