"""Status polls while uploads run: ``GET /v1/jobs/<id>`` latency under simultaneous uploads.

Starts the API as `medflow up` does (gunicorn, gthread) on a private Redis, SQLite and a file blob
store, then runs ``--uploads`` clients each uploading ``--files`` x ``--mb`` MB while
``--pollers`` threads poll a job's status back to back. Prints poll p50/p99/max and the uploads'
MB/s, with the load average (the figures mean little without it).

    python -m bench.poll_during_upload [--uploads 10] [--files 8] [--mb 4] [--pollers 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from api.client import MedflowClient
from bench.upload_speed import MB, _database, _env, _files, _gunicorn, _redis
from config.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mb", type=float, default=4.0)
    parser.add_argument("--pollers", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medflow-polls-"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        env = _env(work, _redis(work, children))
        token = _database(Settings.from_env(env))
        api = _gunicorn(work, env, children)
        run(api, token, work, args)
    finally:
        for child in reversed(children):
            child.terminate()
            child.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def run(api: str, token: str, work: Path, args: argparse.Namespace) -> None:
    client = MedflowClient(api, token)
    polled = client.open_job("bench:1")["id"]
    folders = [
        _files(work / f"files-{n}", args.files, int(args.mb * MB)) for n in range(args.uploads)
    ]
    stop, latencies = threading.Event(), []
    pollers = [threading.Thread(target=poll, args=(api, token, polled, stop, latencies))
               for _ in range(args.pollers)]  # fmt: skip
    for thread in pollers:
        thread.start()
    time.sleep(1.0)
    idle = len(latencies)
    started = time.monotonic()
    uploads = [threading.Thread(target=upload, args=(api, token, paths)) for paths in folders]
    for thread in uploads:
        thread.start()
    for thread in uploads:
        thread.join()
    wall = time.monotonic() - started
    stop.set()
    for thread in pollers:
        thread.join()
    busy = sorted(latencies[idle:])
    size = args.uploads * args.files * args.mb
    print(
        f"{args.uploads} uploads x {args.files} x {args.mb:.0f} MB: {size / wall:.0f} MB/s; "
        f"{len(busy)} polls during them: p50 {1000 * statistics.median(busy):.0f} ms, "
        f"p99 {1000 * busy[int(0.99 * (len(busy) - 1))]:.0f} ms, max {1000 * busy[-1]:.0f} ms; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def poll(api: str, token: str, job_id: str, stop: threading.Event, out: list[float]) -> None:
    request = urllib.request.Request(f"{api}/v1/jobs/{job_id}")
    request.add_header("Authorization", f"Bearer {token}")
    while not stop.is_set():
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        out.append(time.monotonic() - started)


def upload(api: str, token: str, paths: list[Path]) -> None:
    client = MedflowClient(api, token)
    job = client.open_job("bench:1")
    client.add_files(job["id"], paths, batch_bytes=64 * 1024 * 1024)


if __name__ == "__main__":
    main()
