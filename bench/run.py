"""`make bench`: the ceiling, the naive baseline and MedFlow end to end, on the same files.

For each model: (1) the ceiling, the project's own Predictor in a bare loop, one process per
core; (2) the naive single-process float64 baseline; (3) the whole stack, from the first byte
uploaded to the last result row. Results go to ``bench/results/<UTC stamp>-<model>.json`` and
``bench/results/latest.md``, and the table is printed. ``--quick`` is a smoke run (60 images,
two jobs, no 2,000-image RSS figure). The workload is generated once per seed and size and kept
under ``var/bench/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.ceiling import measure_ceiling
from bench.end_to_end import JobPlan, bench_database, claimed_redis_db, measure_end_to_end
from bench.interactive import measure as measure_interactive
from bench.interactive import write as write_interactive
from bench.naive import measure_naive
from bench.report import (
    RESULTS_DIR,
    best_ceiling,
    check_targets,
    interactive_rows,
    load_average,
    machine_facts,
    print_table,
    utc_stamp,
    write_latest,
    write_result,
)
from bench.workload import GROUND_TRUTH, generate_workload
from config.settings import REPO_ROOT

MODELS = ("chest-xray-densenet121", "tiny")
PACED_POLL_S = 0.5  # `medflow submit --wait` polls every 0.5 s at first
FULL_COUNT, QUICK_COUNT = 500, 60
# The jobs sent through one stack, in order. The first is the headline: uploaded as `medflow
# submit` does, no pollers. Then pollers back to back (for the first 15 s only: they saturate
# the API and take CPU from the workers), pollers every 0.5 s for the whole job, and (full run)
# a fourth job for the worker RSS after 2,000 images; these are imported by URI to save time.
SATURATION_POLL_S = 15.0
FULL_JOBS = (
    JobPlan("upload"),
    JobPlan("import", 0.0, SATURATION_POLL_S),
    JobPlan("import", PACED_POLL_S),
    JobPlan("import"),
)
QUICK_JOBS = FULL_JOBS[:3]
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
REDIS_DB = 11  # tried first; claimed like a test session's database (see bench.end_to_end)
BENCH_DATABASE = "medflow_bench"
WORKDIR = REPO_ROOT / "var" / "bench"
STEPS = ("ceiling", "naive", "e2e", "interactive")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    files = workload_files(args.workdir, args.count, args.seed, args.max_side)
    stamp = utc_stamp()
    results = []
    for model in args.models:
        result = run_model(model, files, args, stamp)
        path = write_result(result, stamp, args.out)
        print(f"{model}: results in {path}", file=sys.stderr)
        results.append(result)
    lane = None
    if "interactive" not in args.skip:  # nodule-detector, whatever --models says
        lane = measure_interactive(files, args)
        print(f"interactive: results in {write_interactive(lane, args.out)}", file=sys.stderr)
    print()
    print_table(results)
    if lane is not None:
        print()
        for label, value in interactive_rows(lane):
            print(f"{label:<62} {value}")
    latest = write_latest(results, args.out, lane)
    print(f"\nMarkdown table in {latest}", file=sys.stderr)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 images, 2 jobs")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--count", type=int, help=f"images (default {FULL_COUNT}, quick 60)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-side", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--requests", type=int, help="POST /v1/infer quiet (200, quick 20)")
    parser.add_argument("--skip", default="", help=f"comma-separated steps of {STEPS}")
    parser.add_argument("--postgres-url", default=os.environ.get("MEDFLOW_BENCH_POSTGRES_URL"))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="server, without /db")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.count = args.count or (QUICK_COUNT if args.quick else FULL_COUNT)
    args.requests = args.requests or (20 if args.quick else 200)
    args.jobs = QUICK_JOBS if args.quick else FULL_JOBS
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.postgres_url = (
        args.postgres_url or os.environ.get("MEDFLOW_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL
    )
    return args


def workload_files(workdir: Path, count: int, seed: int, max_side: int) -> list[Path]:
    """The first ``count`` files of the cached workload for ``seed``/``max_side``.

    Item ``i`` depends only on (seed, i, mix, max_side), so a larger cached workload serves a
    smaller count; otherwise the files are generated (once) with one process per core.
    """
    cached = _cached_workloads(workdir, seed, max_side)
    usable = [(n, path) for n, path in cached if n >= count]
    if usable:
        directory = min(usable)[1]
    else:
        directory = workdir / f"workload-s{seed}-n{count}-m{max_side}"
        print(f"generating {count} synthetic X-rays into {directory} ...", file=sys.stderr)
        started = time.monotonic()
        staging = directory.with_name(directory.name + ".tmp")
        generate_workload(staging, count, seed, max_side=max_side, jobs=os.cpu_count() or 1)
        staging.rename(directory)
        print(f"generated in {time.monotonic() - started:.0f} s", file=sys.stderr)
    files = sorted(p for p in directory.iterdir() if p.name != GROUND_TRUTH)
    return files[:count]


def _cached_workloads(workdir: Path, seed: int, max_side: int) -> list[tuple[int, Path]]:
    found = []
    for path in workdir.glob(f"workload-s{seed}-n*-m{max_side}"):
        count = path.name.split("-n", 1)[1].split("-", 1)[0]
        if count.isdigit() and (path / GROUND_TRUTH).exists():
            found.append((int(count), path))
    return found


def run_model(
    model: str, files: list[Path], args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    model_root = REPO_ROOT / "models"
    result: dict[str, Any] = {
        "model": model,
        "stamp": stamp,
        "quick": args.quick,
        "machine": machine_facts(),
        "workload": _workload_facts(files, args),
        "load_before": load_average(),
    }
    if "ceiling" not in args.skip:
        _say(model, "ceiling")
        result["ceiling"] = measure_ceiling(files, model, args.processes, model_root)
    if "naive" not in args.skip:
        _say(model, "naive baseline")
        result["naive"] = measure_naive(files, model, model_root)
    if "e2e" not in args.skip:
        _say(model, f"end to end, {len(args.jobs)} jobs of {len(files)}")
        result["end_to_end"] = _end_to_end(model, files, args)
    if "ceiling" not in args.skip and "e2e" not in args.skip:
        # Again after the stack: the machine is shared, so the load can change in between; the
        # better of the two is the ceiling the ratio uses (the stricter choice).
        _say(model, "ceiling again")
        result["ceiling_after"] = measure_ceiling(files, model, args.processes, model_root)
    if "e2e" not in args.skip:
        _ratios(result)
    result["load_after"] = load_average()
    result["targets"] = check_targets(result)
    return result


def _end_to_end(model: str, files: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    with (
        bench_database(args.postgres_url, BENCH_DATABASE) as database_url,
        claimed_redis_db(args.redis_url, REDIS_DB) as redis_url,
    ):
        return measure_end_to_end(
            files,
            model,
            database_url=database_url,
            redis_url=redis_url,
            workdir=args.workdir / f"stack-{model}",
            jobs=args.jobs,
            pollers=args.pollers,
        )


def _ratios(result: dict[str, Any]) -> None:
    ceiling = best_ceiling(result)
    e2e = result["end_to_end"]
    for key, ratio in (("images_per_s", "ratio_to_ceiling"),
                       ("processing_images_per_s", "processing_ratio")):  # fmt: skip
        value = e2e.get(key)
        e2e[ratio] = round(value / ceiling, 3) if value and ceiling else None


def _workload_facts(files: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    suffixes: dict[str, int] = {}
    for path in files:
        suffixes[path.suffix] = suffixes.get(path.suffix, 0) + 1
    return {
        "count": len(files),
        "seed": args.seed,
        "mix": "default",
        "max_side": args.max_side,
        "directory": str(files[0].parent) if files else None,
        "bytes": sum(p.stat().st_size for p in files),
        "files_by_suffix": suffixes,
    }


def _say(model: str, step: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {model}: {step} (load {load_average()[0]})",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
