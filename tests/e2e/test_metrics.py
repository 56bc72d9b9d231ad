"""Metrics that add up: scraped during a job from two gunicorn workers, and from the Celery
workers and the collector, which serve their own."""

from __future__ import annotations

import itertools
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.conftest import MODEL
from tests.e2e.harness import E2EStack

SCRAPES = 20
SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$")
MONOTONE = ("_total", "_count", "_sum", "_bucket")


def test_counters_never_go_backwards_between_scrapes_during_a_job(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    paths = workload_paths[:40]
    before_workers = _scrape(stack.stack.metrics_urls[f"worker-{MODEL}"])
    before_collector = _scrape(stack.stack.metrics_urls["collector"])
    job_id = stack.upload_job(paths)
    scrapes = []
    for _ in range(SCRAPES):
        stack.client.get_job(job_id)  # requests land on either gunicorn process
        scrapes.append(_scrape(f"{stack.api_url}/metrics"))
        time.sleep(0.05)
    view = stack.wait_for_job(job_id)
    assert view["status"] == "completed", stack.diagnose(job_id)

    for earlier, later in itertools.pairwise(scrapes):
        went_back = {k: (v, later.get(k)) for k, v in earlier.items() if later.get(k, v) < v}
        assert not went_back, went_back
    requests = _sum(scrapes[-1], "medflow_http_requests_total") - _sum(
        scrapes[0], "medflow_http_requests_total"
    )
    assert requests >= SCRAPES - 1  # the polls between the scrapes, from both processes
    assert len(list((stack.workdir / "metrics" / "api").glob("counter_*.db"))) == 2

    after_collector = _scrape(stack.stack.metrics_urls["collector"])
    written = _sum(after_collector, "medflow_results_written_total") - _sum(
        before_collector, "medflow_results_written_total"
    )
    assert written == len(paths)
    after_workers = _scrape(stack.stack.metrics_urls[f"worker-{MODEL}"])
    images = _sum(after_workers, "medflow_worker_images_total", f'model="{MODEL}"')
    assert images - _sum(before_workers, "medflow_worker_images_total") >= len(paths)
    decoded = _sum(after_workers, "medflow_stage_seconds_count", 'stage="decode"')
    assert decoded - _sum(before_workers, "medflow_stage_seconds_count", 'stage="decode"') >= 40
    assert _sum(after_workers, "medflow_queue_wait_seconds_count") > 0
    assert _sum(after_collector, "medflow_job_duration_seconds_count", f'model="{MODEL}"') >= 1


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return dict(_monotone_samples(text))


def _monotone_samples(text: str) -> Iterator[tuple[str, float]]:
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1).endswith(MONOTONE) and not match.group(1).endswith("_created"):
            yield match.group(1) + (match.group(2) or ""), float(match.group(3))


def _sum(samples: dict[str, float], name: str, label: str = "") -> float:
    return sum(v for k, v in samples.items() if k.split("{")[0] == name and label in k)
