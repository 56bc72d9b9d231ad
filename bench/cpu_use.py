"""Where the CPU goes during a job: core-seconds per part of the stack, read from /proc.

On 2 cores every core-second the API, the collector or the client spends is taken from the
workers, so the end-to-end ratio to the ceiling is, to a first approximation, the workers'
share of all CPU spent. Each part is a process tree (a stack child with its pool processes);
Postgres and Redis are found by process name (they are servers the stack only connects to, so
their figures include any other client's work); ``client`` is this process (uploads, pollers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import psutil

SERVERS = {"postgres": "postgres", "redis": "redis-server"}


def cpu_seconds(children: Iterable[Any]) -> dict[str, float]:
    """User + system CPU seconds so far, by part: each stack child's tree, servers, this process."""
    found = {child.name: _tree(child.pid) for child in children}
    found |= dict.fromkeys(SERVERS, 0.0)
    part_of = {name: part for part, name in SERVERS.items()}
    for process in psutil.process_iter(["name"]):
        part = part_of.get(process.info["name"])
        if part is not None:
            found[part] += _own(process)
    found["client"] = _own(psutil.Process(os.getpid()))
    return found


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Core-seconds per part between two readings, and their ``total``."""
    used = {part: round(after[part] - before.get(part, 0.0), 2) for part in after}
    used["total"] = round(sum(used.values()), 2)
    return used


def _tree(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    return sum(_own(process) for process in processes)


def _own(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    # A pool process replaced mid-job takes its CPU with it; children_* keeps what it spent.
    return times.user + times.system + times.children_user + times.children_system
