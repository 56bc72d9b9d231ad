"""The collector anchors the audit chain on its own: at each job's end (and on its beat).

Before issue 9 nothing wrote anchors unless an operator ran `medflow audit anchor`. Here the
stack's collector, the only process given the signing key, signs the head once a job finishes;
verify (which holds only the public key) checks the chain against it.
"""

from __future__ import annotations

from pathlib import Path

from db.anchors import read_anchors
from tests.e2e.harness import E2EStack


def test_a_finished_job_is_anchored_by_the_collector(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    status, body = stack.submit_files(workload_paths[194:196])
    assert status == 202, body
    job_id = body["id"]
    assert stack.wait_for_job(job_id)["status"] == "completed", stack.diagnose(job_id)
    finished = max(
        e.seq for e in stack.audit_rows() if e.action == "job.finished" and e.object_id == job_id
    )
    store = str(stack.settings.audit_anchors)

    def anchored() -> bool:
        return Path(store).is_dir() and any(a.seq >= finished for a in read_anchors(store))

    stack.wait_until(anchored, 30, f"an anchor at or after seq {finished}", job_id)
    status, report = stack.http("GET", "/v1/audit/verify", token=stack.stack.api_key)
    assert status == 200 and report["ok"] is True, report


def test_each_key_reaches_only_the_processes_that_need_it(stack: E2EStack) -> None:
    env = {child.name: child.env for child in stack.stack.children}
    holders = {
        var: sorted(name for name, values in env.items() if values.get(var))
        for var in ("MEDFLOW_RESULTS_KEY", "MEDFLOW_ANCHOR_SIGNING_KEY")
    }
    assert holders == {
        "MEDFLOW_RESULTS_KEY": ["collector", f"worker-{stack.model}"],
        "MEDFLOW_ANCHOR_SIGNING_KEY": ["collector"],
    }
    assert all(values.get("MEDFLOW_ANCHOR_VERIFY_KEY") for values in env.values())
