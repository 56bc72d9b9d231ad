"""`medflow submit PATH... --model NAME[:VER]`: upload a job, optionally wait and fetch results."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from api.client import MedflowClient, MedflowError
from api.commands.progress import Progress, bar
from api.commands.remote import FINAL_STATUSES, client_options, counts, describe
from api.commands.upload_record import UploadRecord

MIB = 1024 * 1024
# Polls back off to every 2 s: a poll costs the API about 2 ms of CPU, and a longer gap makes
# the end of a job show late.
POLL_MIN_S, POLL_MAX_S = 0.5, 2.0


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", required=True, help="NAME or NAME:VERSION")
@click.option("--wait", is_flag=True, help="Wait for the job, then write its results CSV.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results CSV with --wait (default: results-<job id>.csv).",
)
@click.option(
    "--resume",
    "resume_job",
    metavar="JOB",
    help="Continue an interrupted upload into JOB: send only the files it lacks, then seal.",
)
@click.option(
    "--new",
    "force_new",
    is_flag=True,
    help="Open a new job even if an earlier run of the same files stopped before sealing one.",
)
@click.option(
    "--batch-mb",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Upload at most this much per request.",
)
@client_options
def submit(
    client: MedflowClient,
    paths: tuple[Path, ...],
    model: str,
    wait: bool,
    out: Path | None,
    resume_job: str | None,
    force_new: bool,
    batch_mb: int,
) -> None:
    """Submit images (files or directories, searched recursively) as one job.

    503s and dropped connections are retried with backoff; if the command still stops
    mid-upload, run it again: it continues the job it opened (sending only what the job
    lacks) unless given --new. ``--resume JOB`` continues a given job."""
    files, skipped = expand(paths)
    if skipped:
        names = ", ".join(path.name for path in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        noun = "file that is not an image" if len(skipped) == 1 else "files that are not images"
        click.echo(f"skipped {len(skipped)} {noun}: {names}", err=True)
    if not files:
        raise click.UsageError("no image files found under the given paths")
    record = UploadRecord.for_run(client.base_url, model, files)
    earlier = None if force_new or resume_job else record.read()
    if resume_job:
        job_id = resume(client, resume_job, files)
    else:
        job_id = (earlier and resume_interrupted(client, earlier, files)) or open_new(client, model)
    record.write(job_id)
    if files:
        upload(client, job_id, files, batch_mb * MIB)
    click.echo(describe(client.seal(job_id)), err=True)
    record.remove()
    click.echo(job_id)  # stdout carries only the id, for scripts
    if not wait:
        return
    final = wait_for(client, job_id)
    target = out or Path(f"results-{job_id}.csv")
    with open(target, "wb") as handle:
        client.results_csv(job_id, handle)
    click.echo(f"results written to {target}", err=True)
    if final.get("status") in ("failed", "cancelled"):
        raise SystemExit(1)


def open_new(client: MedflowClient, model: str) -> str:
    # One key per invocation: a retried open inside this run cannot create a second job.
    job = client.open_job(model, idempotency_key=uuid.uuid4().hex)
    click.echo(f"job {job['id']} opened for {model}", err=True)
    return str(job["id"])


def resume_interrupted(client: MedflowClient, job_id: str, files: list[Path]) -> str | None:
    """The job an interrupted run of these files opened, continued; None when it is gone or no
    longer open (it was sealed: this is a new run)."""
    try:
        status = client.get_job(job_id).get("status")
    except MedflowError as exc:
        if exc.status not in (403, 404):  # gone, or another key's
            raise
        return None
    if status != "open":
        return None
    note = f"continuing job {job_id}, opened by an interrupted run (--new: a new job)"
    click.echo(note, err=True)
    return resume(client, job_id, files)


def resume(client: MedflowClient, job_id: str, files: list[Path]) -> str:
    """Drop from ``files`` (in place) those the job already holds; the job must be open."""
    job = client.get_job(job_id)
    if job.get("status") != "open":
        raise click.ClickException(f"job {job_id} is {job.get('status')}: nothing to resume")
    have = client.uploaded_refs(job_id)
    files[:] = [path for path in files if str(path) not in have]
    click.echo(f"job {job_id} resumed: {len(have)} images there, {len(files)} to send", err=True)
    return job_id


def expand(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(files to send, files skipped): files as given, and every non-hidden file under each
    directory (sorted, no duplicates) that is an image. A file in a directory that is neither
    DICOM, PNG nor JPEG by its first bytes and has no image extension (a ``ground_truth.csv``
    beside the scans) is skipped; an empty or broken ``.dcm`` is sent, and fails with its code."""
    found: dict[Path, None] = {}
    skipped: list[Path] = []
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in item.relative_to(path).parts)
                if not item.is_file() or hidden:
                    continue
                if looks_like_image(item):
                    found[item] = None
                else:
                    skipped.append(item)
        elif path.is_file():
            found[path] = None
    return list(found), skipped


IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}
SNIFF_BYTES = 4096


def looks_like_image(path: Path) -> bool:
    from pipeline.errors import ErrorCode, ImageError
    from pipeline.sniff import sniff_format

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    try:
        sniff_format(head)
    except ImageError as exc:
        return exc.code != ErrorCode.UNKNOWN_FORMAT  # empty: sent, and reported as EMPTY_FILE
    return True


def upload(client: MedflowClient, job_id: str, files: list[Path], batch_bytes: int) -> None:
    progress, state = Progress(), {"files": 0, "bytes": 0}
    started = time.monotonic()

    def on_batch(count: int, size: int) -> None:
        state["files"] += count
        state["bytes"] += size
        rate = state["bytes"] / MIB / max(time.monotonic() - started, 1e-6)
        progress.update(f"upload {bar(state['files'], len(files))}  {rate:.1f} MB/s")

    client.add_files(job_id, files, batch_bytes, on_batch)
    progress.finish()


def eta_text(job: dict[str, Any]) -> str:
    """``  eta 42 s (120 ahead at 28.1 img/s)`` from the job's ``eta``; empty without one."""
    eta = job.get("eta") or {}
    basis = eta.get("basis") or {}
    if eta.get("seconds") is None:
        return "  eta unknown (rate not measured yet)" if eta else ""
    ahead, rate = basis.get("images_ahead", 0), basis.get("rate_per_s") or 0.0
    return f"  eta {eta['seconds']:.0f} s ({ahead} ahead at {rate:.1f} img/s)"


def wait_for(client: MedflowClient, job_id: str) -> dict[str, Any]:
    """Poll until the job is final, drawing progress; then print a summary."""
    progress, started, delay = Progress(), time.monotonic(), POLL_MIN_S
    try:
        while True:
            job = client.get_job(job_id)
            c = counts(job)
            done = c["succeeded"] + c["failed"] + c["cancelled"]
            # The server's rate (first result to now): most images may be done before the wait.
            rate = job.get("throughput_per_s") or 0.0
            line = f"{job.get('status')} {bar(done, c['total'])}  {rate:.1f} img/s"
            progress.update(line + eta_text(job))
            if job.get("status") in FINAL_STATUSES:
                break
            time.sleep(delay)
            delay = min(POLL_MAX_S, delay * 1.5)
    except KeyboardInterrupt:
        progress.finish()
        raise click.ClickException(f"stopped waiting; job {job_id} goes on") from None
    progress.finish()
    elapsed = time.monotonic() - started
    click.echo(describe(job), err=True)
    rate = job.get("throughput_per_s") or done / max(elapsed, 1e-6)
    click.echo(
        f"{done} images done, waited {elapsed:.1f} s after the upload; {rate:.1f} images/s "
        "from first to last result",
        err=True,
    )
    return job
