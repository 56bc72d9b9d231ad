"""Pseudonyms are per owner (issue 9): the same patient does not link across API keys.

Before, one key for every tenant made a patient's pseudonym the same for every submitter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from api.bootstrap import in_session
from api.client import MedflowClient
from bench.writers import encode
from tests.e2e.harness import FINAL, JOB_TIMEOUT_S, E2EStack


def test_the_same_patient_has_other_pseudonyms_for_another_owner(
    stack: E2EStack, tmp_path: Path
) -> None:
    from db.keys import create_key
    from db.models import Role

    path = tmp_path / "patient.dcm"
    display = np.random.default_rng(9).random((128, 128))
    path.write_bytes(encode(display, "dicom-m2-u12-explicit", index=777))
    _, other = in_session(stack.settings, lambda s: create_key(s, "tenant b", Role.SUBMITTER))

    runs = []
    for token in (None, None, other):  # owner A twice, then owner B
        status, body = stack.submit_files([path], token=token)
        assert status == 202, body
        client = stack.client if token is None else MedflowClient(stack.api_url, token)

        def done(job_id: str = body["id"], client: MedflowClient = client) -> bool:
            return client.get_job(job_id)["status"] in FINAL

        stack.wait_until(
            done, JOB_TIMEOUT_S, "the job to finish", body["id"] if token is None else None
        )
        (result,) = client.iter_results(body["id"])
        assert result["status"] == "succeeded", result
        runs.append(result["pseudonyms"])

    mine, again, theirs = runs
    assert set(mine) == {"patient_pseudonym", "study_pseudonym", "instance_pseudonym"}
    assert mine == again  # stable for one owner
    assert all(mine[name] != theirs[name] for name in mine), (mine, theirs)
