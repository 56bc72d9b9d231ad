"""The API killed mid-upload: `medflow submit` (the real command, in its own process) retries
through the outage and completes the job, nothing lost or duplicated, and the upload spools the
dead request left are swept by the reconciler. And `medflow submit` itself killed mid-upload:
the same command run again continues the job it had opened."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from storage.blobstore import SPOOL_PREFIX
from tests.e2e.harness import E2EStack
from tests.faults.checks import assert_sound, child, kill, restart, wait_done
from tests.faults.conftest import (
    JOB_SIZE,
    MODEL,
    PENDING_TIMEOUT_S,
    RECONCILE_INTERVAL_S,
    SPOOL_IDLE_S,
    ImageMaker,
)

# 200 PNGs of ~150 KB in 1 MiB requests: about 30 requests, each long enough to be caught.
SIDE = 384
BATCH_MB = 1
DOWN_S = 2.0  # the client's first retries are refused: it must back off, not give up
SUBMIT_TIMEOUT_S = 180
RECOVERY_S = PENDING_TIMEOUT_S + 4 * RECONCILE_INTERVAL_S + 60
SWEEP_S = SPOOL_IDLE_S + 3 * RECONCILE_INTERVAL_S + 10


def test_api_killed_mid_upload(stack: E2EStack, images: ImageMaker, tmp_path: Path) -> None:
    files = images.job(JOB_SIZE, side=SIDE, into="killed-api")
    spool_dir = Path(stack.settings.blob_url.removeprefix("file://"))
    submit = start_submit(stack, files[0].parent, tmp_path)
    try:
        # SIGKILL (gunicorn and its workers) the moment a request is writing its spools.
        wait_for_spools(spool_dir, submit)
        kill(stack, "api")
        left = spools(spool_dir)  # no process writes them any more
        assert left, "the killed request left no spool to sweep"
        time.sleep(DOWN_S)
        restart(stack, "api")
        stack.wait_until(stack.stack._api_ready, 60, "the API to come back")
        out, err = submit.communicate(timeout=SUBMIT_TIMEOUT_S)
    finally:
        if submit.poll() is None:
            submit.kill()
    assert submit.returncode == 0, err.decode(errors="replace")
    job_id = out.decode().strip()

    rows = stack.image_rows(job_id)
    assert Counter(row.ref for row in rows) == Counter(str(path) for path in files)
    wait_done(stack, job_id, RECOVERY_S)
    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}

    def swept() -> bool:
        return not spools(spool_dir) & left

    stack.wait_until(swept, SWEEP_S, "the dead request's spools to be swept", poll_s=0.5)
    assert child(stack, "api").alive()


def test_submit_killed_then_run_again(stack: E2EStack, images: ImageMaker, tmp_path: Path) -> None:
    files = images.job(JOB_SIZE, side=SIDE, into="killed-submit")
    spool_dir = Path(stack.settings.blob_url.removeprefix("file://"))
    first = start_submit(stack, files[0].parent, tmp_path)
    try:
        wait_for_spools(spool_dir, first)
        os.kill(first.pid, signal.SIGKILL)  # a closed terminal, a dead laptop
        _, err = first.communicate(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    opened = re.search(r"job (\S+) opened", err.decode())
    assert opened, err.decode(errors="replace")

    again = start_submit(stack, files[0].parent, tmp_path)  # the same command
    out, err = again.communicate(timeout=SUBMIT_TIMEOUT_S)
    assert again.returncode == 0, err.decode(errors="replace")
    assert out.decode().strip() == opened.group(1)
    assert f"continuing job {opened.group(1)}" in err.decode()

    rows = stack.image_rows(opened.group(1))
    assert Counter(row.ref for row in rows) == Counter(str(path) for path in files)
    wait_done(stack, opened.group(1), RECOVERY_S)
    assert set(assert_sound(stack, opened.group(1)).values()) == {("succeeded", None)}
    assert not list((tmp_path / "state").rglob("*.json")), "a sealed upload left its record"


def start_submit(stack: E2EStack, folder: Path, state: Path) -> subprocess.Popen[bytes]:
    """`medflow submit FOLDER` in 1 MiB requests, its upload records under ``state``."""
    argv = [str(Path(sys.executable).with_name("medflow")), "submit", str(folder)]
    argv += ["--model", MODEL, "--batch-mb", str(BATCH_MB)]
    argv += ["--url", stack.api_url, "--key", stack.client.api_key]
    env = {**os.environ, "XDG_STATE_HOME": str(state / "state")}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def spools(root: Path) -> set[str]:
    return {path.name for path in root.glob(f"{SPOOL_PREFIX}*")}


def wait_for_spools(root: Path, submit: subprocess.Popen[bytes]) -> None:
    """Until a request is in flight (its spools exist), polled every few milliseconds."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if spools(root):
            return
        assert submit.poll() is None, "the upload ended before a request could be caught"
        time.sleep(0.002)
    raise AssertionError("no upload request seen within 60 s")
