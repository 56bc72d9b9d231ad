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
