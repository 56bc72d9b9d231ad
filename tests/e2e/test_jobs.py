"""Whole jobs through the real stack: a 200-image mixed job, and broken images among good ones."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from tests.e2e.conftest import PENDING_TIMEOUT_S
from tests.e2e.harness import E2EStack

SCORE_TOLERANCE = 1e-6
API_STATUS = {"ok": "succeeded", "failed": "failed"}  # ImageResult.status -> result row status


def test_mixed_job_completes_with_the_results_of_medflow_predict(
    stack: E2EStack, workload_paths: list[Path], reference: dict[str, dict[str, Any]]
) -> None:
    # The synthetic images are all valid: `medflow predict` succeeds on each of them.
    assert {reference[str(p)]["status"] for p in workload_paths} == {"ok"}, reference
    job_id = stack.upload_job(workload_paths)  # open, upload in batches, seal: `medflow submit`
    view = stack.wait_for_job(job_id, timeout_s=150)

    assert view["status"] == "completed", stack.diagnose(job_id)
    assert view["counts"] == {
        "total": 200, "succeeded": 200, "failed": 0, "pending": 0, "cancelled": 0,
    }  # fmt: skip
    results = stack.results(job_id)
    # Exactly one result per uploaded file, in submission order, each for the file's bytes.
    assert [r["ref"] for r in results] == [str(p) for p in workload_paths]
    assert [r["position"] for r in results] == list(range(200))
    assert len({r["image_id"] for r in results}) == 200
    for result, path in zip(results, workload_paths, strict=True):
        assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), path
    rows = stack.image_rows(job_id)
    assert len(rows) == 200 and {row.id for row in rows} == {r["image_id"] for r in results}
    # The same answers as the one-image, in-process command.
    mismatches = [m for r in results if (m := compare(r, reference[r["ref"]]))]
    assert not mismatches, "\n".join(mismatches[:10])
    events = Counter(
        e.action for e in stack.audit_rows() if job_id in (e.object_id, e.payload.get("job_id"))
    )
    assert events["image.result"] == 200 and events["job.finished"] == 1, events


def test_images_are_processed_while_the_job_is_still_open(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    # Processing overlaps the upload: a batch's images run as soon as that request commits.
    first, second = workload_paths[:4], workload_paths[4:7]
    job_id = stack.client.open_job(stack.model)["id"]
    stack.client.add_files(job_id, first)

    def first_batch_done() -> dict[str, Any] | None:
        view = stack.client.get_job(job_id)
        return view if view["counts"]["succeeded"] == len(first) else None

    # Within the pending timeout, or the reconciler's re-send could be what ran them.
    what = "the first batch's results"
    early = stack.wait_until(first_batch_done, PENDING_TIMEOUT_S, what, job_id)
    assert early["status"] == "open" and early["finished_at"] is None  # more may still come
    stack.client.add_files(job_id, second)
    stack.client.seal(job_id)
    view = stack.wait_for_job(job_id, timeout_s=60)
    assert view["status"] == "completed", stack.diagnose(job_id)
    assert view["counts"]["succeeded"] == len(first) + len(second)
    assert [r["ref"] for r in stack.results(job_id)] == [str(p) for p in first + second]
    assert [row.attempts for row in stack.image_rows(job_id)] == [1] * 7  # sent once, on add


def compare(result: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None when the pipeline's result matches `medflow predict`'s; else what differs."""
    where = result["ref"]
    if result["status"] != API_STATUS[expected["status"]]:
        return f"{where}: status {result['status']} != predict's {expected['status']}"
    if result["error_code"] != expected.get("error_code"):
        return f"{where}: error {result['error_code']} != predict's {expected.get('error_code')}"
    if result["status"] != "succeeded":
        return None
    scores, wanted = result["scores"] or {}, expected["scores"]
    if set(scores) != set(wanted):
        return f"{where}: labels {sorted(scores)} != predict's {sorted(wanted)}"
    far = {k: (scores[k], v) for k, v in wanted.items() if abs(scores[k] - v) > SCORE_TOLERANCE}
    if far:
        return f"{where}: scores differ beyond {SCORE_TOLERANCE}: {far}"
    if sorted(result["positive"] or []) != sorted(expected["positive"]):
        return f"{where}: positive {result['positive']} != predict's {expected['positive']}"
    return None


def test_broken_images_fail_alone_with_their_own_error_codes(
    stack: E2EStack,
    workload_paths: list[Path],
    broken_files: dict[str, Path],
    reference: dict[str, dict[str, Any]],
) -> None:
    good = workload_paths[:4]
    broken = list(broken_files.values())
    paths = [p for pair in zip(good, broken, strict=True) for p in pair]  # interleaved
    job_id = stack.upload_job(paths)
    view = stack.wait_for_job(job_id)

    assert view["status"] == "completed_with_errors", stack.diagnose(job_id)
    assert view["counts"]["succeeded"] == 4 and view["counts"]["failed"] == 4, view
    by_ref = {r["ref"]: r for r in stack.results(job_id)}
    assert len(by_ref) == 8
    for code, path in broken_files.items():
        result = by_ref[str(path)]
        assert (result["status"], result["error_code"]) == ("failed", code), result
        assert result["scores"] is None and result["error_message"], result
    for path in good:
        result = by_ref[str(path)]
        assert result["status"] == "succeeded" and result["error_code"] is None, result
        assert result["scores"], result
    # Failed or not, each result is what `medflow predict` says of the same file.
    mismatches = [m for r in by_ref.values() if (m := compare(r, reference[r["ref"]]))]
    assert not mismatches, "\n".join(mismatches)


def test_a_job_of_only_broken_images_fails(stack: E2EStack, broken_files: dict[str, Path]) -> None:
    job_id = stack.upload_job(list(broken_files.values()))
    view = stack.wait_for_job(job_id)

    assert view["status"] == "failed", stack.diagnose(job_id)
    assert view["counts"] == {"total": 4, "succeeded": 0, "failed": 4, "pending": 0, "cancelled": 0}
    codes = {r["ref"]: r["error_code"] for r in stack.results(job_id)}
    assert codes == {str(path): code for code, path in broken_files.items()}
