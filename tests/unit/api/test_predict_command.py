"""`medflow predict`: in process, JSON lines or a table, failures reported per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.commands.predict import predict
from tests.unit.pipeline.images import png_bytes
from tests.unit.pipeline.model_factory import LABELS, card_for, linear_graph, write_model

FIELDS = {
    "file",
    "status",
    "error_code",
    "error_message",
    "scores",
    "positive",
    "model",
    "timings_ms",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_model(tmp_path / "models", linear_graph(), card_for("chest", "2", batch_size=2))
    return tmp_path / "models"


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = []
    for name, data in [
        ("a.png", png_bytes(seed=1)),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"x" * 50),
        ("c.png", png_bytes(seed=2)),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_json_lines(root: Path, files: list[Path]) -> None:
    args = [*map(str, files), "--model", "chest", "--model-root", str(root), "--json"]
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    for line in lines:
        assert set(line) == FIELDS
        assert line["model"]["name"] == "chest" and line["model"]["version"] == "2"
        assert len(line["model"]["sha256"]) == 64
    ok, broken, other = lines
    assert ok["status"] == "ok" and ok["error_code"] is None and ok["error_message"] is None
    assert set(ok["scores"]) == set(LABELS) and all(0 <= v <= 1 for v in ok["scores"].values())
    assert {"decode", "preprocess", "inference", "total"} <= set(ok["timings_ms"])
    assert broken["status"] == "failed" and broken["error_code"] in (
        "TRUNCATED_FILE",
        "CORRUPT_IMAGE",
    )
    assert "PNG" in broken["error_message"]  # the same message as the table's
    assert broken["scores"] == {} and broken["positive"] == []
    assert other["status"] == "ok"


def test_table_and_model_root_from_settings(root: Path, files: list[Path]) -> None:
    env = {"MEDFLOW_MODEL_ROOT": str(root)}
    result = CliRunner().invoke(predict, [*map(str, files), "--model", "chest:2"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("model chest:2")
    assert "ok" in lines[1] and "failed" in lines[2] and "ok" in lines[3]


def test_unknown_model_is_a_usage_error(root: Path, files: list[Path]) -> None:
    args = [str(files[0]), "--model", "lungs", "--model-root", str(root)]
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 2
    assert "unknown model 'lungs'; available: chest" in result.output


def test_missing_file_is_a_usage_error(root: Path, tmp_path: Path) -> None:
    args = [str(tmp_path / "nope.png"), "--model", "chest", "--model-root", str(root)]
    assert CliRunner().invoke(predict, args).exit_code == 2
