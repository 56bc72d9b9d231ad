"""A plain-text progress line: redrawn in place on a terminal, one line now and then otherwise.

A log file or a CI console does not understand ``\\r``; there each update is a new line, at
most every ``interval_s`` seconds, so a long job leaves a readable trail instead of a flood.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


def bar(done: int, total: int, width: int = WIDTH) -> str:
    filled = width if total <= 0 else min(width, done * width // total)
    percent = 100 if total <= 0 else done * 100 // total
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:3d}%"


class Progress:
    def __init__(self, stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self._last_line = ""
        self._last_time = float("-inf")  # the first update always prints
        self._width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = max(self._width, len(text))
        elif force or (
            text != self._last_line and time.monotonic() - self._last_time >= self.interval_s
        ):
            self.stream.write(text + "\n")
            self._last_time = time.monotonic()
        self._last_line = text
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
        elif self._last_line:
            self.update(self._last_line, force=True)
        self.stream.flush()
