"""Child processes of `medflow up`: each in its own process group, its output in a log file."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A service of the stack did not start; the message names it and its log."""


class Child:
    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, list(argv), dict(env), log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with open(self.log, "ab") as out:
            # A new session: Ctrl-C in the terminal reaches `medflow up` only, which then stops
            # the children in order, and killpg() reaches the whole tree (Celery's pool, gunicorn's
            # workers) at once.
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def wait(self, deadline: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(children: Sequence[Child], grace_s: float) -> None:
    """SIGTERM every group at once (warm shutdowns overlap), SIGKILL what is left after grace."""
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        if not child.wait(deadline):
            child.signal_group(signal.SIGKILL)
            child.wait(time.monotonic() + 5)
    for child in children:  # processes that left the leader's group behind (rare)
        child.signal_group(signal.SIGKILL)


def wait_until(
    check: Callable[[], bool], children: Sequence[Child], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        for child in children:
            if not child.alive():
                raise StackError(f"{child.name} exited; see {child.log}:\n{child.tail()}")
        if time.monotonic() > deadline:
            names = ", ".join(str(child.log) for child in children)
            raise StackError(f"{what} not ready after {timeout_s:.0f} s; see {names}")
        time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded here, in the parent: dlopen() between fork and exec could deadlock on a lock held by
# another thread at fork time; calling an already resolved function is safe.
_LIBC = _load_libc()


def _die_with_parent() -> None:
    # If `medflow up` is killed outright (no chance to clean up), Linux sends SIGTERM to its
    # direct children, so no worker or Redis is left orphaned. Best effort elsewhere.
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
