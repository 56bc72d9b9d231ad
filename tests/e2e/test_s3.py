"""A job submitted as s3:// URIs, read by the API from moto's S3 server over real HTTP."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import S3_IMPORT_BUCKET
from tests.e2e.harness import E2EStack
from tests.e2e.test_jobs import compare


@pytest.fixture
def bucket(s3_endpoint: str) -> tuple[Any, str]:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = S3_IMPORT_BUCKET  # the stack's only S3 import root; each test uses its own keys
    if name not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
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
    ("make_uri", "code"),
    [
        (lambda bucket: f"s3://{bucket}/no/such/key.dcm", "IMPORT_NOT_FOUND"),
        # Outside the S3 import roots: refused before S3 is asked, so existence never shows.
        (lambda _: "s3://no-such-bucket-e2e/a.dcm", "IMPORT_REFUSED"),
    ],
    ids=["missing key", "bucket outside the roots"],
)
def test_a_missing_s3_object_is_refused_with_a_clear_code(
    stack: E2EStack, bucket: tuple[Any, str], workload_paths: list[Path], make_uri: Any, code: str
) -> None:
    client, name = bucket
    client.upload_file(str(workload_paths[0]), name, "present.dcm")
    jobs_before = {job["id"] for job in stack.client.list_jobs(limit=200)}

    status, body = stack.submit_uris([f"s3://{name}/present.dcm", make_uri(name)])

    assert status == 422, body
    assert body["error"]["code"] == code, body
    assert body["error"]["details"]["index"] == 1, body
    assert "no/such" not in body["error"]["message"]  # the message never repeats the URI
    # Nothing half-made: no job for a refused submission.
    assert {job["id"] for job in stack.client.list_jobs(limit=200)} == jobs_before
