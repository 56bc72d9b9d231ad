"""The benchmark's bookkeeping: statistics, targets, result files and tables (nothing is timed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import report


def _result(model: str = "chest-xray-densenet121", **e2e: Any) -> dict[str, Any]:
    end_to_end = {
        "images_per_s": 18.0,
        "ratio_to_ceiling": 0.9,
        "processing_images_per_s": 19.5,
        "processing_ratio": 0.975,
        "upload_s": 3.25,
        "upload_mb_per_s": 600.0,
        "time_to_first_result_s": 3.9,
        "images_per_job": 500,
        "done_at_seal": 180,
        "cpu_core_s": {
            "worker-chest-xray-densenet121": 54.0,
            "api": 6.0,
            "collector": 1.5,
            "client": 1.5,
            "flower": 0.5,
            "postgres": 0.5,
            "redis": 0.2,
            "total": 64.2,
        },
        "stage_ms": {"decode": 10.0, "preprocess": 3.0, "inference": 70.0, "total": 84.0},
        "jobs": [
            {"pollers": 0, "poll": None},
            {"pollers": 20, "images_per_s": 15.0, "poll": {"interval_s": 0.0}},
            {"pollers": 20, "images_per_s": 17.0, "poll": {"interval_s": 0.5}},
            {"via": "import", "pollers": 0, "images_per_s": 17.4, "poll": None},
        ],
        "poll": {
            "back_to_back": {"p50_ms": 200.0, "p99_ms": 380.0, "requests_per_s": 90.0},
            "every_0.5s": {"p50_ms": 8.0, "p99_ms": 42.5, "requests_per_s": 38.0},
        },
        "rss_mb": {
            "start": 300.0,
            "after_first_job": 350.0,
            "after_last_job": 360.0,
            "images_first": 500,
            "images_last": 2000,
            "growth_pct": 2.9,
        },
        **e2e,
    }
    return {
        "model": model,
        "stamp": "20260101T000000Z",
        "quick": False,
        "machine": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "python": "3.12.0",
            "packages": {"onnxruntime": "1.0"},
        },
        "workload": {
            "count": 500,
            "seed": 2026,
            "mix": "default",
            "max_side": 3000,
            "bytes": 2 * 2**30,
        },
        "ceiling": {
            "images_per_s": 20.0,
            "processes": 2,
            "stage_ms": {"decode": 9.0, "preprocess": 2.5, "inference": 65.0, "total": 77.0},
        },
        "ceiling_after": {"images_per_s": 19.0, "processes": 2},
        "naive": {"images_per_s": 5.0},
        "end_to_end": end_to_end,
        "load_before": [0.5, 0.4, 0.3],
        "load_after": [2.1, 1.0, 0.5],
    }


def test_percentile_interpolates_and_handles_no_values() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([5.0], 99) == 5.0
    assert report.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert report.percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_stage_means_skip_missing_stages_and_non_numbers() -> None:
    means = report.stage_means([{"decode": 10, "infer": 2}, {"decode": 20, "note": "x"}, {}])
    assert means == {"decode": 15.0, "infer": 2.0}


def test_targets_are_judged_by_model() -> None:
    targets = report.check_targets(_result())
    assert targets["ratio_to_ceiling"] == {"target": 0.85, "value": 0.9, "met": True}
    assert targets["rss_growth_pct"]["met"] is True
    assert targets["poll_p99_ms_every_0.5s"]["met"] is True
    assert targets["poll_p99_ms_back_to_back"] == {"target": 50.0, "value": 380.0, "met": False}
    missed = report.check_targets(_result("tiny", ratio_to_ceiling=0.5))
    assert missed["ratio_to_ceiling"] == {"target": 0.6, "value": 0.5, "met": False}


def test_rss_growth_is_not_judged_on_a_short_run() -> None:
    short = _result(rss_mb={"start": 1.0, "images_last": 120, "growth_pct": 50.0})
    assert "rss_growth_pct" not in report.check_targets(short)


def test_text_table_has_one_column_per_model_and_dashes_for_missing_figures() -> None:
    tiny = _result("tiny")
    del tiny["naive"]
    del tiny["end_to_end"]["poll"]["every_0.5s"]
    text = report.text_table([_result(), tiny])
    lines = text.splitlines()
    assert "chest-xray-densenet121" in lines[0] and "tiny" in lines[0]
    ratio = next(line for line in lines if "ratio to ceiling" in line)
    assert "0.90 (>= 0.85)" in ratio and "(>= 0.6)" in ratio
    naive = next(line for line in lines if line.startswith("naive"))
    assert naive.split()[-1] == "-"
    assert "350 (500) / 360 (2000)" in text
    assert "20.0 / 19.0" in text
    paced = next(line for line in lines if "every 0.5 s" in line)
    assert "8.0 / 42.5" in paced and paced.endswith("-")
    assert "15.0 / 17.0" in text
    assert "180 / 500" in text
    assert "17.4 (0.87)" in text  # the import job against the better ceiling (20.0)
    # Workers, API, collector, client, and the rest (Flower, Postgres, Redis) summed.
    assert "54.0 / 6.0 / 1.5 / 1.5 / 1.2" in text
    share = next(line for line in lines if "workers' share" in line)
    assert "0.84" in share
    assert "0.50 -> 2.10" in text


def test_markdown_report_and_result_files(tmp_path: Path) -> None:
    result = _result()
    result["targets"] = report.check_targets(result)
    path = report.write_result(result, "20260101T000000Z", tmp_path)
    assert path.name == "20260101T000000Z-chest-xray-densenet121.json"
    assert json.loads(path.read_text())["end_to_end"]["poll"]["every_0.5s"]["p99_ms"] == 42.5
    latest = report.write_latest([result], tmp_path).read_text()
    assert "| --- | ---: |" in latest
    assert "| ratio to ceiling (target) | 0.90 (>= 0.85) |" in latest
    assert "ratio_to_ceiling 0.9 met (0.85)" in latest
    assert "poll_p99_ms_back_to_back 380.0 MISSED (50.0)" in latest
    assert not list(tmp_path.glob("*.tmp"))


def test_machine_facts_name_the_cpu_and_the_versions() -> None:
    facts = report.machine_facts()
    assert facts["cores"] >= 1
    assert len(facts["load_average"]) == 3
    assert "onnxruntime" in facts["packages"]


def test_interactive_rows_show_the_eta_error_and_the_machine_speed_behind_it() -> None:
    batch = {"eta_at_submit_s": 64.4, "actual_s": 45.5, "eta_error": 0.415, "done": 500,
             "images": 500, "status": "completed", "worker_ms_per_image": 161.6}  # fmt: skip
    quiet = {**batch, "eta_at_submit_s": 37.9, "actual_s": 73.0, "eta_error": -0.481,
             "worker_ms_per_image": 266.2}  # fmt: skip
    result = {
        "quiet": {"requests": 200, "p50_ms": 160.0, "p99_ms": 552.6, "load": [8.6]},
        "loaded": {"requests": 55, "batch": batch},
        "quiet_batch": quiet,
        "calibration": {"worker_ms_per_image": 309.0},
    }
    rows = dict(report.interactive_rows(result))
    assert rows["batch ETA at submit vs actual s (within 25%)"] == (
        "64.4 vs 45.5 (+42%); 37.9 vs 73.0 (-48%)"
    )
    assert rows["  worker ms per image: calibration, under load, quiet"] == "309.0 / 161.6 / 266.2"
