"""Test-only faults: an image whose bytes end with a marker kills or hangs its worker process.

The fault suite (``make faults``) needs an image that behaves like a decoder segfault or an
endless loop. Enabled only by ``MEDFLOW_FAULT_HOOKS=1``, which Settings refuses outside
``MEDFLOW_ENV=test``; the workers call :func:`trip` only when it is set.
"""

from __future__ import annotations

import os
import signal
import time

KILL_MARK = b"MEDFLOW-FAULT:KILL"
HANG_MARK = b"MEDFLOW-FAULT:HANG"
STUCK_MARK = b"MEDFLOW-FAULT:STUCK"
_TAIL = 64  # markers are appended to an otherwise valid file


def trip(data: bytes) -> None:
    tail = data[-_TAIL:]
    if KILL_MARK in tail:
        os.kill(os.getpid(), signal.SIGKILL)  # what a segfault or the OOM killer does
    if HANG_MARK in tail:
        while True:  # a hang Python can still interrupt (the soft time limit's signal)
            time.sleep(1)
    if STUCK_MARK in tail:
        # A hang in C code: the soft limit's signal (SIGUSR1) never reaches Python, so only the
        # hard limit ends it.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        while True:
            time.sleep(1)
