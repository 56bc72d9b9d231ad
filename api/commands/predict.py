"""`medflow predict FILE... --model NAME[:VERSION]`: score images in this process, no services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from config.settings import Settings, SettingsError
from pipeline.errors import ErrorCode, ModelError
from pipeline.predict import Predictor
from pipeline.repository import LoadedModel, ModelRepository
from pipeline.result import FAILED, ImageResult


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--model",
    "model_ref",
    required=True,
    metavar="NAME[:VERSION]",
    help="Model to run; without a version, its active version.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, one per line.")
@click.option(
    "--model-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Model repository (default: MEDFLOW_MODEL_ROOT, else the bundled models/).",
)
def predict(
    files: tuple[Path, ...], model_ref: str, as_json: bool, model_root: Path | None
) -> None:
    """Score image files (DICOM, PNG, JPEG) with a model; failed images are reported, not fatal."""
    settings = _settings()
    try:
        model = ModelRepository(model_root or settings.model_root).load(model_ref)
        predictor = Predictor(model, settings.limits, settings.intra_op_threads)
    except ModelError as exc:
        raise click.UsageError(str(exc)) from exc
    width = max(len(str(f)) for f in files)
    if not as_json:
        click.echo(f"model {model.card.ref}  sha256 {model.sha256[:12]}")
    for path, result in zip(files, _results(predictor, list(files)), strict=True):
        click.echo(json.dumps(_record(path, result, model)) if as_json else _row(result, width))


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def _results(predictor: Predictor, files: list[Path]) -> Iterator[ImageResult]:
    """Results in file order, one batch of files in memory at a time."""
    size = predictor.card.batch_size
    for start in range(0, len(files), size):
        chunk = files[start : start + size]
        contents = [_read(path) for path in chunk]
        readable = [
            (str(p), data) for p, data in zip(chunk, contents, strict=True) if data is not None
        ]
        scored = iter(predictor.predict(readable))
        for path, data in zip(chunk, contents, strict=True):
            yield next(scored) if data is not None else _unreadable(path)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _unreadable(path: Path) -> ImageResult:
    return ImageResult(
        ref=str(path),
        status=FAILED,
        error_code=str(ErrorCode.FETCH_FAILED),
        error_message="the file cannot be read",
    )


def _record(path: Path, result: ImageResult, model: LoadedModel) -> dict[str, Any]:
    return {
        "file": str(path),
        "status": result.status,
        "error_code": result.error_code,
        "error_message": result.error_message,
        "scores": result.scores,
        "positive": result.positive,
        "model": {"name": model.card.name, "version": model.card.version, "sha256": model.sha256},
        "timings_ms": result.timings_ms,
    }


def _row(result: ImageResult, width: int) -> str:
    if result.status == FAILED:
        return f"{result.ref:<{width}}  failed  {result.error_code}: {result.error_message}"
    positive = ", ".join(result.positive) or "-"
    top = sorted(result.scores.items(), key=lambda item: -item[1])[:3]
    scores = "  ".join(f"{label} {score:.3f}" for label, score in top)
    total = result.timings_ms.get("total", 0.0)
    return f"{result.ref:<{width}}  ok      positive: {positive}  |  {scores}  ({total:.0f} ms)"
