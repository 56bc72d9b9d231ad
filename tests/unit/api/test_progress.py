"""The progress line: redrawn with \\r on a terminal, plain throttled lines elsewhere."""

from __future__ import annotations

import io

from api.commands.progress import Progress, bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar() -> None:
    assert bar(5, 10, width=10) == "[#####.....] 5/10  50%"
    assert bar(0, 0, width=4) == "[####] 0/0 100%"


def test_without_a_terminal_lines_are_plain_and_throttled() -> None:
    out = io.StringIO()
    progress = Progress(out, interval_s=3600)
    for done in range(5):
        progress.update(f"{done}/4")
    progress.finish()
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines() == ["0/4", "4/4"]  # the first, then the last


def test_on_a_terminal_the_line_is_redrawn() -> None:
    out = Terminal()
    progress = Progress(out)
    progress.update("a long first line")
    progress.update("short")
    progress.finish()
    assert out.getvalue() == "\ra long first line\r" + "short".ljust(17) + "\n"
