"""run_chunk: blobs are fetched one model batch at a time, and a missing blob fails alone.

A worker that fetched a whole chunk before predicting held every blob of it at once (16
full-size DICOMs: about 250 MB per pool process), and its heap kept that high-water mark.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from config.settings import Settings
from pipeline.predict import Predictor
from storage.blobstore import FileBlobStore
from tests.blobs import put_bytes
from workers import model_cache
from workers.tasks.infer import run_chunk

MISSING_KEY = "0" * 64


def png(seed: int, side: int = 96) -> bytes:
    pixels = (np.random.default_rng(seed).random((side, side)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(Settings(env="test"), blob_url=f"file://{tmp_path / 'blobs'}")


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """("get", 1) per blob fetched and ("predict", n) per predictor call of n images."""
    events: list[tuple[str, int]] = []
    original_get, original_predict = FileBlobStore.get, Predictor.predict

    def get(self: FileBlobStore, key: str) -> bytes:
        events.append(("get", 1))
        return original_get(self, key)

    def predict(self: Predictor, items: Any) -> Any:
        items = list(items)
        events.append(("predict", len(items)))
        return original_predict(self, items)

    monkeypatch.setattr(FileBlobStore, "get", get)
    monkeypatch.setattr(Predictor, "predict", predict)
    monkeypatch.setattr(model_cache, "_cache", None)  # a fresh cache on the test's settings
    return events


def store_pngs(settings: Settings, count: int) -> list[str]:
    store = FileBlobStore(settings.blob_url.removeprefix("file://"))
    return [put_bytes(store, png(seed)).key for seed in range(count)]


@pytest.mark.parametrize(("model", "batch"), [("nodule-detector", 1), ("tiny", 8)])
def test_blobs_are_fetched_a_batch_at_a_time(
    settings: Settings, trace: list[tuple[str, int]], model: str, batch: int
) -> None:
    keys = store_pngs(settings, 10)
    results = run_chunk(settings, model, list(enumerate(keys)))

    assert [result.status for result in results] == ["ok"] * 10
    # Never more than one batch fetched ahead of the predictor.
    fetched_ahead = peak = 0
    for kind, count in trace:
        fetched_ahead += count if kind == "get" else -count
        peak = max(peak, fetched_ahead)
    assert peak == batch
    assert [count for kind, count in trace if kind == "predict"] == [
        min(batch, 10 - start) for start in range(0, 10, batch)
    ]


def test_a_missing_blob_fails_alone_in_its_batch(
    settings: Settings, trace: list[tuple[str, int]]
) -> None:
    keys = store_pngs(settings, 3)
    items = [(1, keys[0]), (2, MISSING_KEY), (3, keys[1]), (4, keys[2])]
    results = {result.image_id: result for result in run_chunk(settings, "tiny", items)}

    assert [results[i].status for i in (1, 2, 3, 4)] == ["ok", "failed", "ok", "ok"]
    assert results[2].error_code == "BLOB_MISSING"
    assert results[3].input_sha256 == keys[1]  # the blob key, not a second hash of the bytes
    assert "fetch" in results[3].timings_ms
