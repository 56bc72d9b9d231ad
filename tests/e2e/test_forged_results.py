"""A forged ``medflow.collect`` message on the broker writes nothing (issue 9).

Anyone who can put a message on Redis could send the collector invented scores. With the workers
paused, three forgeries of the job's results are put on the results queue: unsigned, signed with
the API's secret (what the API and Flower hold) and signed with the development key. The
collector refuses each, counts it in ``medflow_collect_refused_total`` and logs no contents; the
images stay pending, then complete with the workers' real, signed results.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from config.settings import DEV_RESULTS_KEY
from messages.chunk_results import ChunkResults
from messages.scored_image import ScoredImage
from messages.signing import sign_chunk
from tests.e2e.harness import E2EStack
from workers.queues import RESULTS_QUEUE
from workers.refusals import REFUSED_COUNTER

FORGED_SCORE = 0.987654321


def forged_chunk(job_id: str, pairs: list[list[Any]]) -> ChunkResults:
    images = tuple(
        ScoredImage(int(i), "ok", input_sha256=str(k), scores={"Nodule": FORGED_SCORE})
        for i, k in pairs
    )
    return ChunkResults(job_id, "forged-chunk", images)


def refused_metric(stack: E2EStack) -> int:
    text = stack.get_text(f"{stack.api_url}/metrics")
    found = re.search(r"^medflow_collect_refused_total (\S+)$", text, re.MULTILINE)
    assert found, text
    return int(float(found.group(1)))


def test_forged_results_are_refused_and_the_images_complete(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    paths = workload_paths[190:194]
    refused_before = int(stack.redis.get(REFUSED_COUNTER) or 0)
    log_start = len(stack.logs()["collector.log"])
    with stack.paused():
        status, body = stack.submit_files(paths)
        assert status == 202, body
        job_id = body["id"]
        (message,) = stack.wait_queued(job_id, 1)
        chunk = forged_chunk(job_id, message["args"][2])
        forgeries = [
            chunk,
            sign_chunk(chunk, stack.settings.secret_key),
            sign_chunk(chunk, DEV_RESULTS_KEY),
        ]
        for forged in forgeries:
            stack.celery.send_task(
                "medflow.collect", args=[forged.to_message()], queue=RESULTS_QUEUE
            )
        stack.wait_until(
            lambda: int(stack.redis.get(REFUSED_COUNTER) or 0) >= refused_before + 3,
            30,
            "the collector to refuse the three forgeries",
            job_id,
        )
        rows = stack.image_rows(job_id)
        assert [row.status.value for row in rows] == ["pending"] * len(paths)
        assert refused_metric(stack) >= refused_before + 3

    view = stack.wait_for_job(job_id)
    assert view["status"] == "completed", stack.diagnose(job_id)
    results = stack.results(job_id)
    assert len(results) == len(paths)
    assert all(r["scores"]["Nodule"] != FORGED_SCORE for r in results), results
    collected = stack.logs()["collector.log"][log_start:]
    assert "collect message refused (bad_mac)" in collected
    assert str(FORGED_SCORE) not in collected and "forged-chunk" not in collected
