"""Logs that answer questions: from the JSON lines alone, which image of a job failed and why."""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.harness import E2EStack

SERVICES = ("api", "collector", "flower")  # and the worker pool, named after the model


def test_the_json_logs_of_a_job_name_its_broken_image_and_error_code(
    stack: E2EStack, workload_paths: list[Path], broken_files: dict[str, Path]
) -> None:
    logs = {name: stack.workdir / "logs" / f"{name}.log" for name in _services(stack)}
    offsets = {name: path.stat().st_size for name, path in logs.items()}
    broken = broken_files["TRUNCATED_FILE"]
    job_id = stack.upload_job([*workload_paths[:3], broken])
    view = stack.wait_for_job(job_id)
    assert view["status"] == "completed_with_errors", stack.diagnose(job_id)
    failed = next(r for r in stack.results(job_id) if r["ref"] == str(broken))
    request_id = f"e2e-{secrets.token_hex(8)}"
    answered = _get_job(stack, job_id, request_id)
    assert answered == request_id  # taken from the caller and returned
    stack.wait_until(lambda: _lines_with(logs["api"], offsets["api"], request_id), 10, "access")

    lines = {name: _json_lines(path, offsets[name]) for name, path in logs.items()}
    everything = [entry for entries in lines.values() for entry in entries]
    failures = [e for e in everything if e.get("image_id") == failed["image_id"]]
    assert failures, "no log line names the failed image"
    assert {e.get("error_code") for e in failures} == {"TRUNCATED_FILE"}, failures
    assert all(e.get("job_id") == job_id and e.get("task_id") for e in failures), failures
    access = [e for e in lines["api"] if e.get("request_id") == request_id]
    assert access and access[0]["path"] == f"/v1/jobs/{job_id}" and access[0]["status"] == 200
    text = "\n".join(_since(path, offsets[name]) for name, path in logs.items())
    assert broken.name not in text  # a client's file name (it may carry PHI) is never logged


def _services(stack: E2EStack) -> list[str]:
    return [*SERVICES, f"worker-{stack.model}"]


def _get_job(stack: E2EStack, job_id: str, request_id: str) -> str:
    request = urllib.request.Request(f"{stack.api_url}/v1/jobs/{job_id}")
    request.add_header("Authorization", f"Bearer {stack.client.api_key}")
    request.add_header("X-Request-Id", request_id)
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["X-Request-Id"])


def _since(path: Path, offset: int) -> str:
    return path.read_bytes()[offset:].decode(errors="replace")


def _lines_with(path: Path, offset: int, needle: str) -> bool:
    return needle in _since(path, offset)


def _json_lines(path: Path, offset: int) -> list[dict[str, Any]]:
    """Every line written since ``offset``; each must be one JSON object."""
    entries = []
    for line in _since(path, offset).splitlines():
        if line.strip():
            entry = json.loads(line)  # fails the test on any line that is not JSON
            assert isinstance(entry, dict), line
            entries.append(entry)
    return entries
