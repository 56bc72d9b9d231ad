"""Benchmark results: machine facts, summary statistics, targets, the JSON files and the tables.

Everything here is pure bookkeeping on plain dicts (the JSON written under ``bench/results/``),
so the unit tests can build a result by hand and check the tables without timing anything.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATEST_MD = "latest.md"
# The targets (5): end to end / ceiling by model, RSS growth 500 -> 2,000, poll p99.
RATIO_TARGETS = {"chest-xray-densenet121": 0.85, "tiny": 0.6}
RSS_GROWTH_MAX_PCT = 10.0
RSS_MIN_IMAGES = 2000
POLL_P99_MAX_MS = 50.0
PACED_KEY, PACED_LABEL = "every_0.5s", "0.5 s"  # the paced poll job (bench.run.PACED_POLL_S)
PACKAGES = ("onnxruntime", "numpy", "pydicom", "pillow", "celery", "psycopg2-binary")


# Machine facts -----------------------------------------------------------------------------


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (the CPU is shared: see every figure)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average": load_average(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# Statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stage_means(timings: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean milliseconds per stage over the images that report it (``timings_ms`` dicts)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for item in timings:
        for stage, ms in (item or {}).items():
            if isinstance(ms, int | float):
                sums[stage] = sums.get(stage, 0.0) + float(ms)
                counts[stage] = counts.get(stage, 0) + 1
    return {stage: round(sums[stage] / counts[stage], 2) for stage in sums}


def rate(images: int, seconds: float | None) -> float | None:
    return round(images / seconds, 2) if seconds else None


# Targets -----------------------------------------------------------------------------------


def check_targets(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target the result can be judged on: ``{"target", "value", "met"}``."""
    e2e = result.get("end_to_end") or {}
    found: dict[str, dict[str, Any]] = {}
    wanted = RATIO_TARGETS.get(str(result.get("model")))
    if wanted is not None and e2e.get("ratio_to_ceiling") is not None:
        found["ratio_to_ceiling"] = _judged(wanted, e2e["ratio_to_ceiling"], higher=True)
    rss = e2e.get("rss_mb") or {}
    growth = rss.get("growth_pct")
    # Judged only over a long enough run (the issue: 500 -> 2,000 images).
    if growth is not None and rss.get("images_last", 0) >= RSS_MIN_IMAGES:
        found["rss_growth_pct"] = _judged(RSS_GROWTH_MAX_PCT, growth, higher=False)
    for name, poll in sorted((e2e.get("poll") or {}).items()):
        if poll.get("p99_ms") is not None:
            found[f"poll_p99_ms_{name}"] = _judged(POLL_P99_MAX_MS, poll["p99_ms"], higher=False)
    return found


def best_ceiling(result: Mapping[str, Any]) -> float | None:
    """The better of the two ceiling runs (before and after the stack): the stricter divisor."""
    runs = [result.get("ceiling"), result.get("ceiling_after")]
    return max((run["images_per_s"] for run in runs if run), default=None)


def _judged(target: float, value: float, *, higher: bool) -> dict[str, Any]:
    met = value >= target if higher else value < target
    return {"target": target, "value": value, "met": bool(met)}


# Files -------------------------------------------------------------------------------------


def utc_stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def write_result(result: Mapping[str, Any], stamp: str, out_dir: Path = RESULTS_DIR) -> Path:
    """``<out_dir>/<stamp>-<model>.json``, written atomically (a .tmp file, then a rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}-{result['model']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def write_latest(
    results: Sequence[Mapping[str, Any]],
    out_dir: Path = RESULTS_DIR,
    interactive: Mapping[str, Any] | None = None,
) -> Path:
    path = out_dir / LATEST_MD
    lane = "" if interactive is None else "\n" + interactive_markdown(interactive)
    path.write_text(markdown_report(results) + lane)
    return path


# Tables ------------------------------------------------------------------------------------

Row = tuple[str, list[str]]

NOTES = (
    "- End to end: from the first uploaded byte (sequential multipart requests, 4 MiB then 64 "
    "MiB, as `medflow submit`) to the last result row. Each request's images are queued as it "
    "commits, so processing overlaps the upload.",
    "- CPU core-s: what each part of the stack spent during the first job (client: the "
    "benchmark's own process, which uploads). On 2 cores the workers' share of all CPU bounds "
    "the ratio to the ceiling.",
    "- Ceiling: `Predictor.predict` in a bare loop, one spawned process per core, one intra-op "
    "thread, files in memory; run before and after the stack, the better one is used.",
    "- Polls: 20 threads, one operator key each, `GET /v1/jobs/<id>` back to back (first 15 s of "
    "a job) or every 0.5 s (a whole job). Stage ms: means of the results' `timings_ms`.",
    "- The machine is shared: each JSON file has the load average before and after every step.",
)


def table_rows(results: Sequence[Mapping[str, Any]]) -> list[Row]:
    """One row per figure, one column per model (the order of ``results``)."""
    specs: list[tuple[str, Any]] = [
        ("images (workload)", lambda r: _num(r["workload"]["count"])),
        ("processes x intra-op threads", _processes),
        ("ceiling img/s, before / after e2e", _ceiling),
        ("naive img/s (1 proc, float64)", lambda r: _ips(r.get("naive"))),
        ("end to end img/s (1st byte -> last row)", lambda r: _ips(r.get("end_to_end"))),
        ("  ratio to ceiling (target)", _ratio),
        ("  results written by the end of upload", _done_at_seal),
        ("  same job imported by file:// URIs img/s (ratio)", _imported),
        ("  upload s (MB/s)", _upload),
        ("  time to first result s", lambda r: _num(_e2e(r).get("time_to_first_result_s"), 2)),
        ("  end to end img/s while polled (b2b / paced)", _polled),
        ("status poll p50 / p99 ms, back to back", lambda r: _poll(r, "back_to_back")),
        (f"status poll p50 / p99 ms, every {PACED_LABEL}", lambda r: _poll(r, PACED_KEY)),
        ("  polls/s (b2b / paced)", _poll_rates),
        ("worker RSS MB start / 1st job / last", _rss),
        ("  RSS growth 1st job -> last (< 10%)", _growth),
        ("CPU core-s workers / API / collector / client / other", _cpu),
        ("  workers' share of CPU", _workers_share),
        ("stage ms ceiling (dec/pre/inf/total)", lambda r: _stages(r.get("ceiling"))),
        ("stage ms workers (dec/pre/inf/total)", lambda r: _stages(_e2e(r))),
        ("load avg before -> after", _load),
    ]
    return [(label, [_safe(cell, r) for r in results]) for label, cell in specs]


def text_table(results: Sequence[Mapping[str, Any]]) -> str:
    rows = [("", [str(r["model"]) for r in results]), *table_rows(results)]
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(results))]
    lines = []
    for label, cells in rows:
        padded = "  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))
        lines.append(f"{label.ljust(label_width)}  {padded}".rstrip())
    return "\n".join(lines)


def markdown_table(results: Sequence[Mapping[str, Any]]) -> str:
    header = "| | " + " | ".join(f"`{r['model']}`" for r in results) + " |"
    rule = "| --- |" + " ---: |" * len(results)
    body = [
        f"| {label.strip()} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        for label, cells in table_rows(results)
    ]
    return "\n".join([header, rule, *body])


def markdown_report(results: Sequence[Mapping[str, Any]]) -> str:
    first = results[0]
    machine = first["machine"]
    workload = first["workload"]
    lines = [
        "# MedFlow benchmark (latest run)",
        "",
        f"Run {first.get('stamp', '?')} (`python -m bench.run"
        f"{' --quick' if first.get('quick') else ''}`) on {machine['cpu_model']}, "
        f"{machine['cores']} cores, Python {machine['python']}, onnxruntime "
        f"{machine['packages'].get('onnxruntime')}. Workload: {workload['count']} synthetic "
        f"X-rays, seed {workload['seed']}, mix {workload['mix']}, max side "
        f"{workload['max_side']} ({_mib(workload.get('bytes'))} MiB).",
        "",
        markdown_table(results),
        "",
        *NOTES,
        "",
        "Targets: " + "; ".join(_target_line(r) for r in results) + ".",
        "",
    ]
    return "\n".join(lines)


def _target_line(result: Mapping[str, Any]) -> str:
    targets = result.get("targets") or {}
    if not targets:
        return f"{result['model']}: not judged"
    marks = ", ".join(
        f"{name} {t['value']} {'met' if t['met'] else 'MISSED'} ({t['target']})"
        for name, t in targets.items()
    )
    return f"{result['model']}: {marks}"


def _safe(cell: Any, result: Mapping[str, Any]) -> str:
    try:
        return str(cell(result))
    except (KeyError, TypeError, IndexError):
        return "-"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def _e2e(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return result.get("end_to_end") or {}


def _polled(result: Mapping[str, Any]) -> str:
    polled = [job for job in _e2e(result).get("jobs", []) if job.get("pollers")]
    by_interval = {(job.get("poll") or {}).get("interval_s"): job for job in polled}
    jobs = [by_interval.get(0.0), *(job for i, job in by_interval.items() if i)]
    return " / ".join(_num((job or {}).get("images_per_s")) for job in jobs[:2])


def _ips(section: Mapping[str, Any] | None) -> str:
    return "-" if not section else _num(section.get("images_per_s"))


def _ceiling(result: Mapping[str, Any]) -> str:
    runs = [result["ceiling"], result.get("ceiling_after") or {}]
    return " / ".join(_num(run.get("images_per_s")) for run in runs)


def _processes(result: Mapping[str, Any]) -> str:
    return f"{result['ceiling']['processes']} x 1"


def _ratio(result: Mapping[str, Any]) -> str:
    ratio = _e2e(result)["ratio_to_ceiling"]
    target = RATIO_TARGETS.get(str(result["model"]))
    return _num(ratio, 2) + (f" (>= {target})" if target is not None else "")


def _imported(result: Mapping[str, Any]) -> str:
    # The last job sent by URI without pollers: the stack without the HTTP upload's CPU.
    jobs = [j for j in _e2e(result)["jobs"] if j.get("via") == "import" and not j.get("pollers")]
    rate, ceiling = jobs[-1]["images_per_s"], best_ceiling(result)
    return f"{_num(rate)} ({_num(rate / ceiling, 2) if ceiling else '-'})"


def _done_at_seal(result: Mapping[str, Any]) -> str:
    e2e = _e2e(result)
    return f"{e2e['done_at_seal']} / {e2e['images_per_job']}"


def _cpu_parts(result: Mapping[str, Any]) -> dict[str, float]:
    used = dict(_e2e(result)["cpu_core_s"])
    total = used.pop("total")
    parts = {"workers": sum(v for k, v in used.items() if k.startswith("worker-"))}
    parts |= {name: used.get(name, 0.0) for name in ("api", "collector", "client")}
    parts["other"] = total - sum(parts.values())
    parts["total"] = total
    return parts


def _cpu(result: Mapping[str, Any]) -> str:
    parts = _cpu_parts(result)
    names = ("workers", "api", "collector", "client", "other")
    return " / ".join(_num(parts[name]) for name in names)


def _workers_share(result: Mapping[str, Any]) -> str:
    parts = _cpu_parts(result)
    return _num(parts["workers"] / parts["total"], 2) if parts["total"] else "-"


def _upload(result: Mapping[str, Any]) -> str:
    e2e = _e2e(result)
    return f"{_num(e2e['upload_s'])} ({_num(e2e['upload_mb_per_s'], 0)})"


def _poll(result: Mapping[str, Any], name: str) -> str:
    poll = _e2e(result)["poll"][name]
    return f"{_num(poll['p50_ms'])} / {_num(poll['p99_ms'])}"


def _poll_rates(result: Mapping[str, Any]) -> str:
    polls = _e2e(result)["poll"]
    names = ("back_to_back", PACED_KEY)
    return " / ".join(_num((polls.get(n) or {}).get("requests_per_s"), 0) for n in names)


def _rss(result: Mapping[str, Any]) -> str:
    rss = _e2e(result)["rss_mb"]
    first, last = rss.get("images_first"), rss.get("images_last")
    return (
        f"{_num(rss['start'], 0)} / {_num(rss['after_first_job'], 0)} ({first}) / "
        f"{_num(rss['after_last_job'], 0)} ({last})"
    )


def _growth(result: Mapping[str, Any]) -> str:
    growth = _e2e(result)["rss_mb"].get("growth_pct")
    return "-" if growth is None else f"{growth:+.1f}%"


def _stages(section: Mapping[str, Any] | None) -> str:
    stages = (section or {}).get("stage_ms") or {}
    if not stages:
        return "-"
    names = ("decode", "preprocess", "inference", "total")
    return "/".join(_num(stages.get(name)) for name in names)


def _load(result: Mapping[str, Any]) -> str:
    return f"{result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}"


def _mib(size: int | None) -> str:
    return "?" if size is None else f"{size / 2**20:.0f}"


# The interactive lane (bench.interactive, nodule-detector) ------------------------------------

# Targets (issue 14): quiet p50/p99 in ms; under load, multiples of one chunk plus one image;
# the ETA given at submission within this fraction of the actual time.
QUIET_P50_MS, QUIET_P99_MS = 150.0, 300.0
LOADED_P50_X, LOADED_P99_X = 1.5, 3.0
ETA_TOLERANCE = 0.25


def interactive_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The interactive lane's rows (bench.interactive's result), printed under the table."""
    q, lo = result.get("quiet") or {}, result.get("loaded") or {}
    batches = [b for b in (lo.get("batch"), result.get("quiet_batch")) if b]
    return [
        (
            f"infer quiet p50 / p99 ms ({q.get('requests')} req; < {QUIET_P50_MS:g} / "
            f"{QUIET_P99_MS:g})",
            f"{q.get('p50_ms')} / {q.get('p99_ms')}  (load {_lane_load(q)})",
        ),
        (
            f"infer under load p50 / p99 ms ({lo.get('requests')} req)",
            f"{lo.get('p50_ms')} / {lo.get('p99_ms')}  (load {_lane_load(lo)})",
        ),
        (
            f"  x (chunk + image = {lo.get('chunk_plus_image_ms')} ms; < {LOADED_P50_X:g} / "
            f"{LOADED_P99_X:g})",
            f"{lo.get('p50_x')} / {lo.get('p99_x')}",
        ),
        (
            "batch under load: done / images, status",
            f"{(lo.get('batch') or {}).get('done')} / {(lo.get('batch') or {}).get('images')}, "
            f"{(lo.get('batch') or {}).get('status')}",
        ),
        (
            f"batch ETA at submit vs actual s (within {ETA_TOLERANCE:.0%})",
            "; ".join(
                f"{b.get('eta_at_submit_s')} vs {b.get('actual_s')} ({_pct(b.get('eta_error'))})"
                for b in batches
            ),
        ),
        # An ETA rests on the rate measured before the job: on a shared machine, the worker's
        # own time per image shows how much faster or slower the machine became since.
        (
            "  worker ms per image: calibration, under load, quiet",
            " / ".join(
                str(b.get("worker_ms_per_image"))
                for b in (result.get("calibration") or {}, *batches)
            ),
        ),
    ]


def _lane_load(section: Mapping[str, Any]) -> str:
    before, after = section.get("load_before") or [None], section.get("load") or [None]
    return f"{before[0]} -> {after[0]}"


def _pct(error: float | None) -> str:
    return "n/a" if error is None else f"{error:+.0%}"


def interactive_markdown(result: Mapping[str, Any]) -> str:
    lines = [
        "## Interactive lane (`POST /v1/infer`, nodule-detector, `python -m bench.interactive`)",
        "",
        "| | |",
        "| --- | ---: |",
        *(f"| {label.strip()} | {value} |" for label, value in interactive_rows(result)),
        "",
    ]
    return "\n".join(lines)


def print_table(results: Sequence[Mapping[str, Any]], out: Any = sys.stdout) -> None:
    print(text_table(results), file=out)
