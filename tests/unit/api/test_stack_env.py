"""settings_to_env is the inverse of Settings.from_env: `medflow up` children see the same
settings as the parent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from api.stack_env import WORKER_MALLOC_ENV, settings_to_env
from config.settings import Settings
from pipeline.limits import ImageLimits


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    settings = replace(
        Settings(),
        env="test",
        database_url="postgresql+psycopg2://u:p@db:5432/x",
        redis_url="redis://127.0.0.1:6400/3",
        blob_url="s3://bucket/prefix",
        s3_endpoint_url="http://127.0.0.1:9000",
        model_root=tmp_path / "models",
        models=("tiny", "nodule-detector"),
        import_roots=(tmp_path / "a", tmp_path / "b"),
        chunk_size=5,
        intra_op_threads=2,
        worker_concurrency=3,
        visibility_timeout_s=700,
        chunk_time_limit_s=60,
        pending_timeout_s=90,
        reconcile_interval_s=7,
        secret_key="k" * 40,
        rate_limit="10/second",
        max_request_bytes=1234,
        chunk_start_limit=3,
        image_time_limit_s=20,
        fault_hooks=1,
        limits=ImageLimits(max_bytes=99, min_side=8, max_side=512, max_pixels=512 * 512),
    )
    assert Settings.from_env(settings_to_env(settings)) == settings


def test_defaults_round_trip() -> None:
    assert Settings.from_env(settings_to_env(Settings())) == Settings()


def test_malloc_thresholds_are_within_glibc_limits() -> None:
    # glibc ignores an mmap threshold above 32 MiB on 64-bit (HEAP_MAX_SIZE / 2).
    assert int(WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]) <= 32 * 1024 * 1024
    assert int(WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]) > 0
