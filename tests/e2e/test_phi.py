"""PHI stays out of every place an operator can read: logs, Redis, the audit chain, Flower,
/metrics. Results carry keyed pseudonyms instead, stable across submissions.

The DICOM files carry distinctive identifiers (pydicom's CR file "6154" of Doe^Archibald, and one
made here for Zebulon^Quuxley), and their *file names* carry them too, since a ref may name a
patient. Every byte the stack's processes wrote while the jobs ran is searched: each process log
in the workdir, every command Redis executed on the stack's database (MONITOR; kombu bodies are
base64, so they are decoded before searching), the queued messages themselves, every column of
every audit event, the facts stored with the results, Flower's task list, and /metrics.
"""

from __future__ import annotations

import io
import shutil
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tests.e2e.capture import RedisMonitor, expand_encodings, find_needles
from tests.e2e.harness import E2EStack

ZEBULON = {
    "PatientName": "Zebulon^Quuxley",
    "PatientID": "PHI-778899",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77889911",
    "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.77889922",
}


@pytest.fixture(scope="session")
def phi_files(tmp_path_factory: pytest.TempPathFactory, workload: list[Any]) -> dict[str, Any]:
    """Two DICOM files named after their patients, and every identifier to look for."""
    out = tmp_path_factory.mktemp("e2e-phi")
    source = get_testdata_file("6154", download=False)
    assert source, "pydicom's test file 6154 is not installed"
    archibald = dcmread(source)
    doe = out / f"{archibald.PatientName}_{archibald.PatientID}.dcm"
    shutil.copyfile(source, doe)

    template = next(i.path for i in workload if i.variant == "dicom-m2-u16-explicit")
    dataset = dcmread(template)
    for keyword, value in ZEBULON.items():
        setattr(dataset, keyword, value)
    dataset.file_meta.MediaStorageSOPInstanceUID = ZEBULON["SOPInstanceUID"]
    zebulon = out / "Zebulon^Quuxley_PHI-778899.dcm"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    zebulon.write_bytes(buffer.getvalue())

    needles = ["Archibald", "Zebulon", "Quuxley", "PHI-778899", str(archibald.PatientID)]
    needles += [str(archibald.StudyInstanceUID), str(archibald.SOPInstanceUID)]
    needles += [ZEBULON["StudyInstanceUID"], ZEBULON["SOPInstanceUID"]]
    return {"paths": [doe, zebulon], "needles": needles}


def test_no_identifier_leaves_the_results_and_pseudonyms_are_stable(
    stack: E2EStack, phi_files: dict[str, Any]
) -> None:
    paths, needles = phi_files["paths"], phi_files["needles"]
    with RedisMonitor(stack.settings.redis_url) as monitor:
        with stack.paused():  # the raw messages, seen in the queue before any worker takes them
            first = stack.upload_job(paths)
            queued = [m["text"] for m in stack.wait_queued(first, 1)]
        second = stack.upload_job(paths)
        views = [stack.wait_for_job(job_id) for job_id in (first, second)]
        stack.wait_idle()

    assert [v["status"] for v in views] == ["completed", "completed"], stack.diagnose(first)
    # Results carry pseudonyms: per patient, the same in both jobs, never the identifier.
    runs = [{r["ref"]: r["pseudonyms"] for r in stack.results(job)} for job in (first, second)]
    assert runs[0] == runs[1], runs
    for path in paths:
        pseudonyms = runs[0][str(path)]
        assert set(pseudonyms) == {"patient_pseudonym", "study_pseudonym", "instance_pseudonym"}
        assert not find_needles(" ".join(pseudonyms.values()), needles, "pseudonyms")
    assert runs[0][str(paths[0])] != runs[0][str(paths[1])]

    places = {
        "queued messages": expand_encodings("\n".join(queued)),
        "redis commands": expand_encodings(monitor.text()),
        "audit_events": audit_text(stack),
        "images.facts": "\n".join(
            f"{row.facts} {row.error_message} {row.timings_ms}"
            for job_id in (first, second)
            for row in stack.image_rows(job_id)
        ),
        "flower /api/tasks": expand_encodings(flower_tasks(stack)),
        "/metrics": stack.get_text(f"{stack.api_url}/metrics"),
        **{f"log {name}": text for name, text in workdir_files(stack).items()},
    }
    # The capture is real: each place holds this run's traffic (the logs hold counts only).
    for place in ("queued messages", "redis commands", "audit_events", "flower /api/tasks"):
        assert first in places[place], f"{place} did not capture job {first}"
    hits = [hit for where, text in places.items() for hit in find_needles(text, needles, where)]
    assert not hits, "identifiers leaked:\n" + "\n".join(hits)


def audit_text(stack: E2EStack) -> str:
    columns = ("seq", "occurred_at", "actor", "action", "object_type", "object_id", "payload",
               "prev_hash", "hash")  # fmt: skip
    return "\n".join(
        " ".join(str(getattr(event, column)) for column in columns) for event in stack.audit_rows()
    )


def flower_tasks(stack: E2EStack) -> str:
    auth = (stack.stack.flower_user, stack.stack.flower_password)
    return stack.get_text(f"{stack.stack.flower_url}/api/tasks?limit=100000", auth=auth)


def workdir_files(stack: E2EStack) -> dict[str, str]:
    """Every file the stack wrote in its workdir (process logs, beat schedule, admin key)."""
    return {
        str(path.relative_to(stack.workdir)): path.read_bytes().decode("utf-8", errors="replace")
        for path in sorted(stack.workdir.rglob("*"))
        if path.is_file()
    }
