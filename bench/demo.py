"""`make demo`: 500 synthetic chest X-rays through the whole stack as one job, then a summary.

Generates the images (once; they are kept under the work dir), starts the stack exactly as
`medflow up` does, submits the images in several upload requests the way `medflow submit`
does, shows progress, then prints per-label positives, the nodule detector's accuracy against
the generator's ground truth, and throughput; the stack is stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from api.children import free_port
from api.client import MedflowClient
from api.commands.submit import upload, wait_for
from api.stack import Stack
from bench.scoring import Confusion, roc_auc
from bench.workload import generate_workload, read_ground_truth
from config.settings import REPO_ROOT, Settings

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    workdir = args.workdir.resolve()
    images = _images(workdir, args)
    settings = _settings(workdir)
    files = sorted(p for p in images.iterdir() if p.name != "ground_truth.csv")
    print(f"{len(files)} images in {images}; starting the stack (logs in {workdir}/stack/logs)")
    stack = Stack(
        settings,
        [args.model],
        api_port=free_port(),
        flower_port=free_port(),
        workdir=workdir / "stack",
    )
    with stack:
        print(f"API    {stack.api_url}  (key {stack.api_key[:12]}...)")
        print(
            f"Flower {stack.flower_url}  (user {stack.flower_user}, password in "
            f"{stack.workdir / 'flower-password'})"
        )
        job, results, upload_s = _run_job(MedflowClient(stack.api_url, stack.api_key), args, files)
    _summary(job, results, read_ground_truth(images / "ground_truth.csv"), upload_s)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-side", type=int, default=2048)
    parser.add_argument("--model", default="nodule-detector")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "demo")
    return parser.parse_args(argv)


def _images(workdir: Path, args: argparse.Namespace) -> Path:
    out = workdir / f"images-s{args.seed}-n{args.count}-m{args.max_side}"
    if not (out / "ground_truth.csv").exists():
        print(f"generating {args.count} synthetic X-rays (DICOM, PNG, JPEG) into {out} ...")
        started = time.monotonic()
        generate_workload(
            out, args.count, args.seed, max_side=args.max_side, jobs=os.cpu_count() or 1
        )
        print(f"generated in {time.monotonic() - started:.0f} s")
    return out


def _settings(workdir: Path) -> Settings:
    settings = Settings.from_env()
    defaults = Settings()
    # The demo keeps its state under its own work dir, unless the environment says otherwise.
    if settings.database_url == defaults.database_url:
        settings = replace(settings, database_url=f"sqlite:///{workdir / 'medflow.db'}")
    if settings.blob_url == defaults.blob_url:
        settings = replace(settings, blob_url=f"file://{workdir / 'blobs'}")
    return settings


def _run_job(
    client: MedflowClient, args: argparse.Namespace, files: list[Path]
) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    started = time.monotonic()
    job_id = str(client.open_job(args.model, idempotency_key=uuid.uuid4().hex)["id"])
    upload(client, job_id, files, 64 * MIB)
    client.seal(job_id)
    upload_s = time.monotonic() - started
    print(f"job {job_id}: {len(files)} images uploaded and sealed in {upload_s:.1f} s")
    job = wait_for(client, job_id)
    return job, list(client.iter_results(job_id)), upload_s


def _summary(
    job: dict[str, Any], results: list[dict[str, Any]], truth: list[Any], upload_s: float
) -> None:
    by_name = {Path(item.path).name: item for item in truth}
    positives: Counter[str] = Counter(label for r in results for label in r.get("positive") or [])
    errors = Counter(r["error_code"] for r in results if r["status"] == "failed")
    counts = job["counts"]
    print("\n== MedFlow demo summary ==")
    print(
        f"job {job['id']}  status {job['status']}  model {job['model']['name']}:"
        f"{job['model']['version']}"
    )
    print(f"images {counts['total']}: {counts['succeeded']} succeeded, {counts['failed']} failed")
    for code, n in sorted(errors.items()):
        print(f"  failed with {code}: {n}")
    print("positives per label:")
    for label, n in sorted(positives.items()):
        print(f"  {label:<20} {n}")
    _nodule_accuracy(results, by_name)
    # Images are processed while the rest upload, so the figure that counts runs from the job's
    # opening (the first byte) to its last result.
    total_s = _seconds_between(job["created_at"], job["finished_at"])
    print(
        f"end to end {counts['total'] / total_s:.1f} images/s ({total_s:.1f} s from the first byte "
        f"to the last result; the upload took {upload_s:.1f} s of it)"
    )


def _seconds_between(start: str, end: str) -> float:
    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return max((parse(end) - parse(start)).total_seconds(), 1e-6)


def _nodule_accuracy(results: list[dict[str, Any]], by_name: dict[str, Any]) -> None:
    scored = [
        (by_name[Path(r["ref"]).name].has_nodule, r["scores"]["Nodule"], "Nodule" in r["positive"])
        for r in results
        if r["status"] == "succeeded"
        and "Nodule" in (r.get("scores") or {})
        and Path(r["ref"]).name in by_name
    ]
    if not scored:
        print("nodule accuracy: no Nodule scores in this job's results")
        return
    confusion = Confusion.from_pairs([(truth, flagged) for truth, _, flagged in scored])
    auc = roc_auc([truth for truth, _, _ in scored], [score for _, score, _ in scored])
    print(
        f"nodule detector vs ground truth ({len(scored)} images): accuracy "
        f"{confusion.accuracy:.3f}, sensitivity {confusion.sensitivity:.3f}, "
        f"specificity {confusion.specificity:.3f}, ROC AUC {auc:.3f}"
    )


if __name__ == "__main__":
    main()
