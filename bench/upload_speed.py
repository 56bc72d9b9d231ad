"""Upload speed of the API alone: multipart ``POST /v1/jobs/<id>/images`` into a real gunicorn.

Starts a private Redis and a one-worker gunicorn on a fresh SQLite database and file blob store
in a temporary directory, then uploads fresh random files (new bytes every run, so no blob is
deduplicated) with the client ``medflow submit`` uses, in its 64 MiB requests. Prints MB/s and
the API's CPU seconds per 100 MB (gunicorn's master and worker, user + system).

    python -m bench.upload_speed [--files 40] [--mb 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from api.client import MedflowClient
from api.stack import gunicorn_workers
from config.settings import Settings
from db.keys import create_key
from db.models import ModelVersion, Role
from db.session import make_engine, make_session_factory, session_scope, upgrade

MB = 1_000_000
CARD = {"name": "bench", "version": "1", "output": {"labels": ["A"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--mb", type=float, default=4.0, help="size of each file, MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medflow-upload-"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        env = _env(work, _redis(work, children))
        token = _database(Settings.from_env(env))
        api = _gunicorn(work, env, children)
        client = MedflowClient(api, token)
        for run in range(args.runs):
            paths = _files(work / "files", args.files, int(args.mb * MB))
            job = client.open_job("bench:1")
            before, started = _cpu(children[-1].pid), time.monotonic()
            own = time.process_time()
            client.add_files(job["id"], paths)
            wall, after = time.monotonic() - started, _cpu(children[-1].pid)
            own = time.process_time() - own
            user, system = after[0] - before[0], after[1] - before[1]
            cpu = user + system
            size = sum(p.stat().st_size for p in paths) / MB
            print(
                f"run {run + 1}: {size:.0f} MB in {wall:.2f} s = {size / wall:.0f} MB/s; "
                f"API CPU {cpu:.2f} s ({cpu / size * 100:.2f} s per 100 MB; "
                f"user {user / size * 100:.2f}, system {system / size * 100:.2f}), "
                f"client CPU {own:.2f} s ({own / size * 100:.2f} s per 100 MB)"
            )
    finally:
        for child in reversed(children):
            child.terminate()
            child.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis(work: Path, children: list[subprocess.Popen[bytes]]) -> str:
    port = _free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    children.append(subprocess.Popen([*argv, "--dir", str(work)], stdout=subprocess.DEVNULL))
    return f"redis://127.0.0.1:{port}/0"


def _env(work: Path, redis_url: str) -> dict[str, str]:
    (work / "models").mkdir()
    return {
        "MEDFLOW_ENV": "development",
        "MEDFLOW_DATABASE_URL": f"sqlite:///{work / 'medflow.db'}",
        "MEDFLOW_BLOB_URL": f"file://{work / 'blobs'}",
        "MEDFLOW_REDIS_URL": redis_url,
        "MEDFLOW_MODEL_ROOT": str(work / "models"),
        "MEDFLOW_MODELS": "bench",
        "MEDFLOW_RATE_LIMIT": "100000/minute",
        # The benches' simultaneous clients stand for many users but share one key.
        "MEDFLOW_MAX_UPLOADS_PER_KEY": "1000",
    }


def _database(settings: Settings) -> str:
    upgrade(settings)
    engine = make_engine(settings)
    with session_scope(make_session_factory(engine)) as session:
        session.add(ModelVersion(name="bench", version="1", sha256="ab" * 32, card=CARD))
        _, token = create_key(session, "bench", Role.SUBMITTER)
    engine.dispose()
    return token


def _gunicorn(work: Path, env: dict[str, str], children: list[subprocess.Popen[bytes]]) -> str:
    url = f"http://127.0.0.1:{_free_port()}"
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "api.wsgi:app",
        "--bind",
        url[7:],
        *gunicorn_workers(),
    ]
    argv += ["--timeout", "300", "--control-socket", str(work / "gunicorn.ctl")]
    children.append(subprocess.Popen(argv, env={**os.environ, **env}))
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
            return url
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _files(folder: Path, count: int, size: int) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    paths = [folder / f"{index}.png" for index in range(count)]
    for path in paths:
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8))
    return paths


def _cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of gunicorn's master and workers."""
    master = psutil.Process(pid)
    user = system = 0.0
    for process in [master, *master.children(recursive=True)]:
        times = process.cpu_times()
        user, system = user + times.user, system + times.system
    return user, system


if __name__ == "__main__":
    main()
