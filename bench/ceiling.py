"""The ceiling: the project's own decode + preprocess + inference in a bare loop, per core.

One spawned process per core, each with one intra-op thread (DESIGN.md, performance model).
The processes are started with the worker's glibc malloc settings (api.stack_env), read every
file into memory, create their ONNX session (after the spawn, as the workers do after the
fork), warm up, and wait at a common start line. Then each takes the next ``card.batch_size``
images from a shared counter and calls ``Predictor.predict`` on them: no queues, no database,
no blob store. The rate is all images over the time from the start line to the last finish.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.stack_env import WORKER_MALLOC_ENV
from bench.report import load_average, rate, stage_means

WARMUP_IMAGES = 2
START_TIMEOUT_S = 300.0


def measure_ceiling(
    files: Sequence[Path], model: str, processes: int, model_root: Path
) -> dict[str, Any]:
    """Images/s of ``processes`` bare Predictor loops over ``files`` (all of them, once)."""
    context = mp.get_context("spawn")
    counter = context.Value("i", 0)
    go = context.Event()
    ready, done = context.Queue(), context.Queue()
    paths = [str(p) for p in files]
    with worker_environment():
        procs = [
            context.Process(
                target=_loop,
                args=(paths, model, str(model_root), counter, go, ready, done),
                name=f"ceiling-{index}",
            )
            for index in range(processes)
        ]
        for proc in procs:
            proc.start()
    try:
        for _ in procs:
            ready.get(timeout=START_TIMEOUT_S)
        load_before = load_average()
        started = time.monotonic()
        go.set()
        reports = [done.get() for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    finished = max(report["finished"] for report in reports)
    return _summary(reports, processes, finished - started, load_before)


@contextmanager
def worker_environment() -> Iterator[None]:
    """os.environ as the worker pool sees it, for children started inside the block."""
    saved = {name: os.environ.get(name) for name in WORKER_MALLOC_ENV}
    os.environ.update(WORKER_MALLOC_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _summary(
    reports: list[dict[str, Any]], processes: int, seconds: float, load_before: list[float]
) -> dict[str, Any]:
    timings = [t for report in reports for t in report["timings"]]
    images = sum(report["images"] for report in reports)
    return {
        "processes": processes,
        "intra_op_threads": 1,
        "images": images,
        "failed": sum(report["failed"] for report in reports),
        "seconds": round(seconds, 3),
        "images_per_s": rate(images, seconds),
        "per_process_images": [report["images"] for report in reports],
        "stage_ms": stage_means(timings),
        "malloc_env": dict(WORKER_MALLOC_ENV),
        "load_before": load_before,
        "load_after": load_average(),
    }


def _loop(
    paths: list[str],
    model: str,
    model_root: str,
    counter: Any,
    go: Any,
    ready: Any,
    done: Any,
) -> None:
    """One ceiling process: load, warm up, then predict until the shared counter runs out."""
    from pipeline.limits import ImageLimits
    from pipeline.predict import Predictor
    from pipeline.repository import ModelRepository

    items = [(Path(p).name, Path(p).read_bytes()) for p in paths]
    loaded = ModelRepository(Path(model_root)).load(model)
    # No hashing: the digest is not decode, preprocess or inference (workers know it already:
    # a blob key is the content sha256).
    predictor = Predictor(loaded, ImageLimits(), intra_op_threads=1, hash_images=False)
    predictor.predict(items[:WARMUP_IMAGES])
    step = max(1, int(loaded.card.batch_size))
    ready.put(os.getpid())
    go.wait()
    timings: list[dict[str, float]] = []
    images = failed = 0
    while True:
        with counter.get_lock():
            start = counter.value
            counter.value = start + step
        if start >= len(items):
            break
        for result in predictor.predict(items[start : start + step]):
            images += 1
            failed += result.status != "ok"
            timings.append(dict(result.timings_ms))
    done.put({"images": images, "failed": failed, "timings": timings, "finished": time.monotonic()})
