"""medflow submit's record of an unsealed upload: one per URL, model and exact set of files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.commands.upload_record import UploadRecord


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def files(tmp_path: Path) -> list[Path]:
    (tmp_path / "scans").mkdir(exist_ok=True)
    paths = [tmp_path / "scans" / f"{n}.png" for n in range(3)]
    for path in paths:
        path.write_bytes(b"png")
    return paths


def test_same_run_same_record_another_run_another(tmp_path: Path, state_home: Path) -> None:
    paths = files(tmp_path)
    record = UploadRecord.for_run("http://api", "tiny", paths)
    assert record.path.parent == state_home / "medflow" / "uploads"
    assert UploadRecord.for_run("http://api", "tiny", list(reversed(paths))) == record
    assert UploadRecord.for_run("http://api", "nodule-detector", paths) != record
    assert UploadRecord.for_run("http://other", "tiny", paths) != record
    assert UploadRecord.for_run("http://api", "tiny", paths[:2]) != record
    paths[0].write_bytes(b"png, changed")
    os.utime(paths[0], ns=(1, 1))
    assert UploadRecord.for_run("http://api", "tiny", paths) != record


def test_written_read_removed(tmp_path: Path) -> None:
    record = UploadRecord.for_run("http://api", "tiny", files(tmp_path))
    assert record.read() is None
    record.write("job-1")
    assert record.read() == "job-1"
    assert "scans" not in record.path.read_text()  # the job id only, no file name
    record.remove()
    assert record.read() is None
    record.remove()  # twice is fine
    record.path.parent.mkdir(parents=True, exist_ok=True)
    record.path.write_text("not json")
    assert record.read() is None
