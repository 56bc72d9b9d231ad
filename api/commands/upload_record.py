"""`medflow submit`'s record of an upload under way, so that running the same command again after
an interruption (a killed terminal, a laptop closed, retries exhausted) continues the same job
instead of opening a second one.

One small JSON file per run, named by a digest of the API URL, the model and the exact files
(absolute path, size, modification time): the same directory with the same files is the same
run; a file added, removed or changed makes another. It holds the job id and the run's
idempotency key, never a file name. It is written once the job is open and removed once the job
is sealed: the next run of a finished upload opens a new job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UploadRecord:
    path: Path

    @classmethod
    def for_run(cls, url: str, model: str, files: list[Path]) -> UploadRecord:
        digest = hashlib.sha256(f"{url}\n{model}\n".encode())
        for path in sorted(files, key=lambda p: str(p.resolve())):
            stat = path.stat()
            digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return cls(state_dir() / f"{digest.hexdigest()[:32]}.json")

    def read(self) -> str | None:
        """The job id of an earlier run of these files that did not seal its job."""
        try:
            job_id = json.loads(self.path.read_text()).get("job_id")
        except (OSError, ValueError, AttributeError):
            return None
        return str(job_id) if job_id else None

    def write(self, job_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"job_id": job_id}))
        tmp.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def state_dir() -> Path:
    """$XDG_STATE_HOME/medflow/uploads (the XDG default: ~/.local/state)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "medflow" / "uploads"
