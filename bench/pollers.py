"""Clients that poll ``GET /v1/jobs/<id>`` while a job runs, timing every answer.

Each poller is a thread with the project's own HTTP client (``MedflowClient.get_job``: a new
connection per request, as ``medflow status`` makes), so a latency includes the TCP connect,
authentication, one short database read and the JSON body. Each poller has its own API key, as
20 separate dashboards or scripts would: the API's rate limit is a budget per key.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from api.client import MedflowClient
from bench.report import percentile


class Pollers:
    """One thread per client polling one job every ``interval_s`` (0: back to back)."""

    def __init__(self, clients: list[MedflowClient], job_id: str, interval_s: float = 0.0) -> None:
        self.clients, self.job_id = clients, job_id
        self.count, self.interval_s = len(clients), interval_s
        self.latencies_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = self._stopped = 0.0

    def __enter__(self) -> Pollers:
        self._started = time.monotonic()
        for index, client in enumerate(self.clients):
            thread = threading.Thread(
                target=self._poll, args=(client,), name=f"poller-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._stopped = time.monotonic()

    def summary(self) -> dict[str, Any]:
        with self._lock:
            values = list(self.latencies_ms)
            errors = dict(self.errors)
        elapsed = max(self._stopped - self._started, 1e-9)
        return {
            "pollers": self.count,
            "interval_s": self.interval_s,
            "requests": len(values),
            "requests_per_s": round(len(values) / elapsed, 1),
            "errors": errors,
            **{f"p{q}_ms": _round(percentile(values, q)) for q in (50, 90, 99)},
            "max_ms": _round(max(values, default=None)),
        }

    def _poll(self, client: MedflowClient) -> None:
        if self.interval_s:  # spread the first polls over one interval, as independent clients
            self._stop.wait(self.interval_s * random.random())
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                client.get_job(self.job_id)
            except Exception as exc:  # a refused or timed-out poll is counted, not fatal
                with self._lock:
                    name = type(exc).__name__
                    self.errors[name] = self.errors.get(name, 0) + 1
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                with self._lock:
                    self.latencies_ms.append(elapsed_ms)
            if self.interval_s:
                self._stop.wait(self.interval_s)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
