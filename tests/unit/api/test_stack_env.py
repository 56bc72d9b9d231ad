"""settings_to_env is the inverse of Settings.from_env: `medflow up` children see the same
settings as the parent."""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from api.stack_env import WORKER_MALLOC_ENV, settings_to_env
from config.settings import Settings
from pipeline.limits import ImageLimits


def changed_values(tmp_path: Path) -> dict[str, Any]:
    """A value other than the default for every field; a new field needs one here."""
    return {
        "env": "test",
        "database_url": "postgresql+psycopg2://u:p@db:5432/x",
        "redis_url": "redis://127.0.0.1:6400/3",
        "blob_url": "s3://bucket/prefix",
        "s3_endpoint_url": "http://127.0.0.1:9000",
        "model_root": tmp_path / "models",
        "models": ("tiny", "nodule-detector"),
        "import_roots": (tmp_path / "a", tmp_path / "b"),
        "chunk_size": 5,
        "intra_op_threads": 2,
        "worker_concurrency": (os.cpu_count() or 1) + 1,
        "visibility_timeout_s": 700,
        "chunk_time_limit_s": 60,
        "pending_timeout_s": 90,
        "reconcile_interval_s": 7,
        "max_attempts": 9,
        "secret_key": "k" * 40,
        "audit_anchors": "s3://anchors/medflow",
        "rate_limit": "10/second",
        "max_request_bytes": 1234,
        "max_form_parts": 50,
        "body_read_timeout_s": 7,
        "max_uploads_per_key": 3,
        "limits": ImageLimits(max_bytes=99, min_side=8, max_side=512, max_pixels=512 * 512),
        "chunk_start_limit": 3,
        "image_time_limit_s": 20,
        "fault_hooks": 1,
        "outbox_interval_s": 2,
        "outbox_max_attempts": 3,
        "outbox_backoff_s": 1,
        "outbox_lease_s": 90,
        # Webhooks (issue 10)
        "webhooks": '{"ris": {"url": "https://hooks.example.org/in", "secret_env": "RIS_SECRET"}}',
        "webhook_allow": "https://hooks.example.org/",
        "public_url": "https://medflow.example.org",
        # Trust boundaries (issue 9)
        "results_key": "r" * 40,
        "anchor_signing_key": "/keys/anchor.pem",
        "anchor_verify_key": "v" * 44,
        "anchor_interval_s": 42,
        "s3_import_roots": ("bucket-a/scans", "bucket-b"),
        "import_allow_hardlinks": True,
        "allow_nonclinical_models": True,
        "open_job_idle_s": 120,
        "spool_idle_s": 30,
        # Many hosts (issue 12)
        "model_repository": "s3://models/medflow",
        "model_cache_dir": tmp_path / "model-cache",
        "metrics_port": 9109,
        "metrics_address": "0.0.0.0",
        "metrics_token": "t" * 32,
        "log_level": "DEBUG",
        "log_format": "text",
        # Interactive lane (issue 14)
        "queue_cap": 500,
        "interactive_queue_cap": 4,
    }


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    values = changed_values(tmp_path)
    defaults = Settings()
    assert sorted(values) == sorted(f.name for f in fields(Settings))
    for name in ("limits", *values):
        assert getattr(defaults, name) != values[name], (
            f"{name}: pick a value that is not the default"
        )
    for field in fields(ImageLimits):
        assert getattr(defaults.limits, field.name) != getattr(values["limits"], field.name)
    settings = replace(defaults, **values)
    back = Settings.from_env(settings_to_env(settings))
    for field in fields(Settings):
        assert getattr(back, field.name) == getattr(settings, field.name), field.name


def test_defaults_round_trip() -> None:
    assert Settings.from_env(settings_to_env(Settings())) == Settings()


def test_malloc_thresholds_are_within_glibc_limits() -> None:
    # glibc ignores an mmap threshold above 32 MiB on 64-bit (HEAP_MAX_SIZE / 2).
    assert int(WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]) <= 32 * 1024 * 1024
    assert int(WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]) > 0
