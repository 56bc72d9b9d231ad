"""`python -m bench.interactive`: the interactive lane's rows of `make bench` (nodule-detector).

One stack (api.stack.Stack, a private Postgres database and Redis db), then:

1. quiet: ``POST /v1/infer`` of one 2048x2048 16-bit DICOM, back to back, end to end from the
   client (upload, job, priority queue, worker, collector, notification, answer);
2. a calibration batch (imported by ``file://`` URIs) from which the collector measures the
   model's rate;
3. under load: a batch job of the workload keeps both worker processes busy while the same
   DICOM is sent to ``/v1/infer`` again and again; the reference is the time of one batch chunk
   plus one image (worker time: chunk_size x the batch's mean per image, plus the interactive
   image's own), since the priority image should wait at most for the chunk in progress;
4. a second batch on a quiet stack; for both batches the ETA given in the submission's response
   is compared with the time the job actually took.

Results go to ``bench/results/<stamp>-interactive.json`` and the table is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from api.children import free_port
from api.client import MedflowClient
from api.stack import Stack
from bench.end_to_end import bench_database, claimed_redis_db
from bench.report import (
    RESULTS_DIR,
    interactive_rows,
    load_average,
    machine_facts,
    percentile,
    utc_stamp,
)
from config.settings import REPO_ROOT, Settings

MODEL = "nodule-detector"
SIDE = 2048
CALIBRATION_IMAGES = 150
WARMUP_REQUESTS = 5
LOADED_GAP_S = 0.1  # between requests under load: a client that sends one image at a time
FINAL = ("completed", "completed_with_errors", "failed", "cancelled")
WORKDIR = REPO_ROOT / "var" / "bench"
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "medflow_bench_interactive"
REDIS_DB = 12


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from bench.run import workload_files

    files = workload_files(args.workdir, args.batch, args.seed, args.max_side)
    result = measure(files, args)
    path = write(result, args.out)
    print(f"interactive: results in {path}", file=sys.stderr)
    print()
    for label, value in interactive_rows(result):
        print(f"{label:<62} {value}")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.interactive", description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="quiet POST /v1/infer count")
    parser.add_argument("--batch", type=int, default=500, help="images in each batch job")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-side", type=int, default=3000)
    parser.add_argument("--postgres-url", default=os.environ.get("MEDFLOW_BENCH_POSTGRES_URL"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.postgres_url = (
        args.postgres_url or os.environ.get("MEDFLOW_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL
    )
    return args


def make_dicom(directory: Path) -> Path:
    """One 2048x2048 16-bit (unsigned, explicit VR) synthetic chest X-ray with a nodule."""
    from bench.synthetic import render_chest
    from bench.writers import write

    path = directory / f"interactive-{SIDE}-u16.dcm"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        image, _ = render_chest(7, 0, SIDE, SIDE, True)
        write(path, image, "dicom-m2-u16-explicit", seed=7, index=0)
    return path


def measure(files: Sequence[Path], args: argparse.Namespace) -> dict[str, Any]:
    dicom = make_dicom(args.workdir)
    result: dict[str, Any] = {
        "model": MODEL,
        "machine": machine_facts(),
        "load_before": load_average(),
        "image": {"path": dicom.name, "bytes": dicom.stat().st_size},
    }
    with (
        bench_database(args.postgres_url, BENCH_DATABASE) as database_url,
        claimed_redis_db(args.redis_url, REDIS_DB) as redis_url,
        _stack(database_url, redis_url, files, args.workdir / "stack-interactive") as stack,
    ):
        client = MedflowClient(stack.api_url, stack.api_key)
        result["chunk_size"] = stack.settings.chunk_size
        for _ in range(WARMUP_REQUESTS):  # the worker processes load the model on first use
            infer_once(client, dicom)
        _say("quiet infer")
        result["quiet"] = quiet(client, dicom, args.requests)
        _say("calibration batch")
        result["calibration"] = run_batch(client, files[:CALIBRATION_IMAGES])
        _say("infer under load")
        result["loaded"] = under_load(client, dicom, files, stack.settings.chunk_size)
        _say("quiet batch (ETA)")
        result["quiet_batch"] = run_batch(client, files)
    result["load_after"] = load_average()
    return result


def _stack(database_url: str, redis_url: str, files: Sequence[Path], workdir: Path) -> Stack:
    settings = replace(
        Settings(),
        database_url=database_url,
        redis_url=redis_url,
        blob_url=f"file://{workdir / 'blobs'}",
        import_roots=tuple({p.parent.resolve() for p in files}),
    )
    return Stack(settings, [MODEL], api_port=free_port(), flower_port=free_port(), workdir=workdir)


def infer_once(client: MedflowClient, path: Path) -> tuple[float, int, dict[str, Any]]:
    started, sent = time.perf_counter(), time.time()
    status, body = client.infer(path, MODEL, timeout_s=60, idempotency_key=uuid.uuid4().hex)
    elapsed = time.perf_counter() - started
    body["_sent"], body["_answered"] = sent, sent + elapsed  # for breakdown(), not reported
    return elapsed * 1000, status, body


def quiet(client: MedflowClient, dicom: Path, count: int) -> dict[str, Any]:
    load = load_average()
    runs = [infer_once(client, dicom) for _ in range(count)]
    return {
        **_latency([ms for ms, *_ in runs], runs),
        "breakdown_ms_p50": breakdown(client, runs),
        "load_before": load,
        "load": load_average(),
    }


def breakdown(client: MedflowClient, runs: list[tuple[float, int, dict[str, Any]]]) -> dict:
    """Median ms of each leg, from the job's created_at and the result's completed_at (same
    clock): request to job row (upload, store, checks), job row to result row (queue, worker,
    collector), result row to answer (announcement, read, response)."""
    legs: dict[str, list[float]] = {"to_job_row": [], "to_result_row": [], "to_answer": []}
    for _, status, body in runs:
        if status != 200:
            continue
        created = _epoch(client.get_job(str(body["job_id"]))["created_at"])
        completed = _epoch(body["completed_at"])
        legs["to_job_row"].append((created - body["_sent"]) * 1000)
        legs["to_result_row"].append((completed - created) * 1000)
        legs["to_answer"].append((body["_answered"] - completed) * 1000)
    return {leg: _round(percentile(values, 50)) for leg, values in legs.items()}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _latency(latencies: list[float], runs: list[tuple[float, int, dict[str, Any]]]) -> dict:
    worker_ms = [_worker_ms(body) for _, status, body in runs if status == 200]
    return {
        "requests": len(runs),
        "answered_200": sum(status == 200 for _, status, _ in runs),
        "succeeded": sum(body.get("status") == "succeeded" for _, _, body in runs),
        "p50_ms": _round(percentile(latencies, 50)),
        "p99_ms": _round(percentile(latencies, 99)),
        "max_ms": _round(max(latencies) if latencies else None),
        "worker_ms_mean": _round(sum(worker_ms) / len(worker_ms) if worker_ms else None),
    }


def _worker_ms(result: dict[str, Any]) -> float:
    timings = result.get("timings_ms") or {}
    return float(timings.get("total", 0.0)) + float(timings.get("fetch", 0.0))


def run_batch(client: MedflowClient, files: Sequence[Path]) -> dict[str, Any]:
    """One sealed job imported by URI; its ETA at submission against the time it took."""
    job_id, eta_s, submitted = submit_batch(client, files)
    job = wait_job(client, job_id)
    return _batch_figures(client, job, eta_s, submitted)


def submit_batch(client: MedflowClient, files: Sequence[Path]) -> tuple[str, float | None, float]:
    images = [{"uri": path.resolve().as_uri(), "ref": path.name} for path in files]
    body = client._json("POST", "/v1/jobs", {"model": MODEL, "images": images})
    submitted = time.time()
    eta = body.get("eta") or {}
    return str(body["id"]), eta.get("seconds"), submitted


def wait_job(client: MedflowClient, job_id: str, timeout_s: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get_job(job_id)
        if job.get("status") in FINAL:
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish in {timeout_s} s")


def _batch_figures(
    client: MedflowClient, job: dict[str, Any], eta_s: float | None, submitted: float
) -> dict[str, Any]:
    actual_s = _epoch(str(job["finished_at"])) - submitted
    results = list(client.iter_results(str(job["id"])))
    per_image = [_worker_ms(r) for r in results if r.get("status") == "succeeded"]
    counts = job.get("counts") or {}
    error = None if eta_s is None else (eta_s - actual_s) / actual_s
    return {
        "job_id": job["id"],
        "status": job["status"],
        "images": counts.get("total"),
        "done": sum(int(counts.get(k) or 0) for k in ("succeeded", "failed", "cancelled")),
        "eta_at_submit_s": eta_s,
        "actual_s": round(actual_s, 2),
        "eta_error": None if error is None else round(error, 3),
        "worker_ms_per_image": _round(sum(per_image) / len(per_image) if per_image else None),
    }


def under_load(
    client: MedflowClient, dicom: Path, files: Sequence[Path], chunk_size: int
) -> dict[str, Any]:
    load = load_average()
    job_id, eta_s, submitted = submit_batch(client, files)
    runs = []
    while client.get_job(job_id).get("status") not in FINAL:
        runs.append(infer_once(client, dicom))
        time.sleep(LOADED_GAP_S)
    job = wait_job(client, job_id)
    batch = _batch_figures(client, job, eta_s, submitted)
    figures = _latency([ms for ms, *_ in runs], runs)
    reference = None
    if batch["worker_ms_per_image"] and figures["worker_ms_mean"]:
        reference = chunk_size * batch["worker_ms_per_image"] + figures["worker_ms_mean"]
    return {
        **figures,
        "batch": batch,
        "chunk_plus_image_ms": _round(reference),
        "p50_x": _ratio(figures["p50_ms"], reference),
        "p99_x": _ratio(figures["p99_ms"], reference),
        "load_before": load,
        "load": load_average(),
    }


def _ratio(value: float | None, reference: float | None) -> float | None:
    return round(value / reference, 2) if value and reference else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def write(result: dict[str, Any], out_dir: Path) -> Path:
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{utc_stamp()}-interactive.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _say(step: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] interactive: {step} (load {load_average()[0]})",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
