"""The command line as a new user meets it: submit skips what is not an image, status says
when a job was created and how to see its failures, cancel exists."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from api.cli import _register, medflow
from api.commands.remote import describe
from api.commands.submit import expand

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_submit_skips_files_in_a_directory_that_are_not_images(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a.png").write_bytes(PNG)
    (tmp_path / "scans" / "noext").write_bytes(PNG)  # an image by its bytes
    (tmp_path / "scans" / "broken.dcm").write_bytes(b"")  # sent: it fails with EMPTY_FILE
    (tmp_path / "scans" / "ground_truth.csv").write_text("file,label\na.png,1\n")
    files, skipped = expand([tmp_path / "scans"])
    assert [p.name for p in files] == ["a.png", "broken.dcm", "noext"]
    assert [p.name for p in skipped] == ["ground_truth.csv"]
    given, none = expand([tmp_path / "scans" / "ground_truth.csv"])  # named: the user means it
    assert [p.name for p in given] == ["ground_truth.csv"] and none == []


def test_status_line_says_when_and_how_to_see_failures() -> None:
    job = {
        "id": "j1",
        "status": "completed_with_errors",
        "created_at": "2026-12-04T19:30:00.123Z",
        "model": {"ref": "tiny:1"},
        "counts": {"total": 3, "succeeded": 2, "failed": 1, "cancelled": 0},
    }
    text = describe(job)
    assert "created 2026-12-04 19:30:00" in text
    assert "medflow results j1 --failed" in text
    clean = describe({**job, "counts": {"total": 3, "succeeded": 3, "failed": 0, "cancelled": 0}})
    assert "--failed" not in clean


def test_cancel_and_results_failed_are_commands() -> None:
    _register()
    runner = CliRunner()
    assert runner.invoke(medflow, ["cancel", "--help"]).exit_code == 0
    assert "--failed" in runner.invoke(medflow, ["results", "--help"]).output
