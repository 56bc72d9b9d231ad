"""Private Redis and Postgres servers the fault suite may stop, restart and flush at will.

The shared servers of the other tests must never see these faults, so each fault session
starts its own: ``redis-server`` on a free port (nothing on disk), and a Postgres cluster made by
``initdb`` and run by ``pg_ctl`` on a free port (as the ``postgres`` user when we are root:
Postgres refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from api.children import Child, free_port, stop_all, wait_until
from api.stack import redis_answers, redis_server_argv
from tests.system_tools import require_tool


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: Child | None = None

    def start(self) -> PrivateRedis:
        argv = redis_server_argv(self.port, self.workdir)
        self.server = Child("redis", argv, os.environ, self.workdir / "redis.log").start()
        wait_until(lambda: redis_answers(self.url), [self.server], 30, "Redis")
        return self

    def stop(self) -> None:
        if self.server is not None:
            stop_all([self.server], 5)
            self.server = None

    def restart_empty(self) -> None:
        """Down and up again on the same port with nothing in it (no persistence)."""
        self.stop()
        self.start()


class PrivatePostgres:
    def __init__(self) -> None:
        binary = _pg_binary("pg_ctl")
        self.bin = Path(binary).parent
        self.port = free_port()
        # Under /tmp, not pytest's tmp (mode 0700, unreadable to the postgres user).
        self.root = Path(tempfile.mkdtemp(prefix="medflow-faults-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/faults"

    def init(self) -> PrivatePostgres:
        if self.user is not None:
            record = pwd.getpwnam(self.user)
            os.chown(self.root, record.pw_uid, record.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "faults")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin / tool), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120, cwd=self.root)


def _pg_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else require_tool(name, "postgresql")
