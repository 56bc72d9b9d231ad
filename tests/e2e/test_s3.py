"""A job submitted as s3:// URIs, read by the API from moto's S3 server over real HTTP."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.harness import E2EStack
from tests.e2e.test_jobs import compare


@pytest.fixture
def bucket(s3_endpoint: str) -> tuple[Any, str]:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"medflow-e2e-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    return client, name


def test_job_of_s3_uris_completes(
    stack: E2EStack,
    bucket: tuple[Any, str],
    workload_paths: list[Path],
    reference: dict[str, dict[str, Any]],
) -> None:
    client, name = bucket
    paths = workload_paths[100:106]  # DICOM, PNG and JPEG alike
    uris = []
    for path in paths:
        key = f"scans/{secrets.token_hex(3)}/{path.name}"
        client.upload_file(str(path), name, key)
        uris.append(f"s3://{name}/{key}")

    status, body = stack.submit_uris(uris)
    assert status == 202, body
    view = stack.wait_for_job(body["id"])

    assert view["status"] == "completed", stack.diagnose(body["id"])
    assert view["counts"]["succeeded"] == len(uris)
    results = stack.results(body["id"])
    assert [r["ref"] for r in results] == uris  # the ref defaults to the URI
    for result, path in zip(results, paths, strict=True):
        assert compare(result, reference[str(path)]) is None, compare(result, reference[str(path)])


@pytest.mark.parametrize(
    "make_uri",
    [lambda bucket: f"s3://{bucket}/no/such/key.dcm", lambda _: "s3://no-such-bucket-e2e/a.dcm"],
    ids=["missing key", "missing bucket"],
)
def test_a_missing_s3_object_is_refused_with_a_clear_code(
    stack: E2EStack, bucket: tuple[Any, str], workload_paths: list[Path], make_uri: Any
) -> None:
    client, name = bucket
    client.upload_file(str(workload_paths[0]), name, "present.dcm")
    jobs_before = {job["id"] for job in stack.client.list_jobs(limit=200)}

    status, body = stack.submit_uris([f"s3://{name}/present.dcm", make_uri(name)])

    assert status == 422, body
    assert body["error"]["code"] == "IMPORT_NOT_FOUND", body
    assert body["error"]["details"]["index"] == 1, body
    assert "no/such" not in body["error"]["message"]  # the message never repeats the URI
    # Nothing half-made: no job for a refused submission.
    assert {job["id"] for job in stack.client.list_jobs(limit=200)} == jobs_before
