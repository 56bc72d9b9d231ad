"""A worker's models from an S3 model repository: mirrored into its own cache, checked by sha256."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from config.settings import Settings
from models.build import build_models
from pipeline.errors import ModelError
from storage.model_store import ModelVersionExists, S3ModelStore, open_model_store
from workers.model_cache import ModelCache


@pytest.fixture
def s3_settings(
    s3_endpoint: str, settings_factory: Callable[..., Settings], tmp_path: Path
) -> Settings:
    bucket = f"medflow-models-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return settings_factory(
        s3_endpoint_url=s3_endpoint,
        model_repository=f"s3://{bucket}/repo",
        model_cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    build_models(tmp_path / "built", ["tiny"])
    return next((tmp_path / "built" / "tiny").iterdir())


def test_a_published_version_is_served_from_a_fresh_cache_and_pinned(
    s3_settings: Settings, tiny_dir: Path
) -> None:
    store = open_model_store(s3_settings)
    assert isinstance(store, S3ModelStore)
    store.publish(tiny_dir, "tiny", tiny_dir.name)
    with pytest.raises(ModelVersionExists):
        store.publish(tiny_dir, "tiny", tiny_dir.name)
    sha256 = json.loads((tiny_dir / "model.json").read_text())["sha256"]

    cache = ModelCache(s3_settings)  # nothing cached yet: a host that has never seen it
    predictor = cache.get(f"tiny:{tiny_dir.name}@{sha256}")
    assert predictor.model.sha256 == sha256
    assert (s3_settings.model_cache_dir / "tiny" / tiny_dir.name / "model.onnx").is_file()
    assert cache.resolve("tiny") == f"tiny:{tiny_dir.name}"


def test_a_graph_that_differs_from_the_registry_is_refused(
    s3_settings: Settings, tiny_dir: Path
) -> None:
    open_model_store(s3_settings).publish(tiny_dir, "tiny", tiny_dir.name)
    with pytest.raises(ModelError) as raised:
        ModelCache(s3_settings).get(f"tiny:{tiny_dir.name}@{'0' * 64}")
    assert raised.value.field == "sha256"


def test_a_changed_object_in_the_bucket_is_refused(
    s3_settings: Settings, tiny_dir: Path, s3_endpoint: str
) -> None:
    store: Any = open_model_store(s3_settings)
    store.publish(tiny_dir, "tiny", tiny_dir.name)
    key = store.object_name("tiny", tiny_dir.name, "model.onnx")
    store.client.put_object(Bucket=store.bucket, Key=key, Body=b"not the registered graph")
    with pytest.raises(ModelError):
        ModelCache(s3_settings).get(f"tiny:{tiny_dir.name}")
