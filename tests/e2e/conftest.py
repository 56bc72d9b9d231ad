"""Fixtures of the end-to-end tests: one whole stack per database backend, shared by every test.

The stack (gunicorn, a Celery worker pool, the collector, the beat, Flower: what `medflow up`
runs) starts once per backend for the whole e2e session, because starting it costs far more
than any one test. ``db_backend`` is overridden here with session scope, so pytest runs every
SQLite case, stops that stack, then every Postgres case on a second stack. Tests share the
stack, so each one looks only at its own jobs.

Settings are short for speed: chunks of 16, the reconciler every 2 s re-queueing images pending
for more than PENDING_TIMEOUT_S, images down to 16 px accepted (pydicom's 16 x 16 CR file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from config.settings import REPO_ROOT, Settings
from pipeline.limits import ImageLimits
from tests.conftest import _REDIS_CLAIM, BACKENDS
from tests.e2e.harness import E2EStack

MODEL = "nodule-detector"
WORKLOAD_COUNT = 200
WORKLOAD_SEED = 7
MAX_SIDE = 512
CHUNK_SIZE = 16
PENDING_TIMEOUT_S = 10  # longer than any pause in the tests, or the reconciler joins in
RECONCILE_INTERVAL_S = 2
MIN_SIDE = 16  # pydicom's CR file 6154 is 16 x 16
SECRET = "e2e-secret-0123456789abcdef0123456789abcdef"
S3_IMPORT_BUCKET = "medflow-e2e-imports"  # the one bucket s3:// imports may read


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------------------------------------
# The backend: once per session, not per test
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgres", for the whole e2e session (one stack each)."""
    return str(request.param)


@pytest.fixture(scope="session")
def e2e_database_url(
    db_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database for one stack: a SQLite file, or a fresh schema in the session's
    Postgres database. The stack migrates it itself, as `medflow up` does."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e-sqlite') / 'medflow.db'}"
        return
    database = request.getfixturevalue("postgres_database")
    schema, url = database.new_schema()
    try:
        yield url
    finally:
        database.drop_schema(schema)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled models, built here (deterministic) so the suite needs no `make models`."""
    from models.build import build_models

    root = tmp_path_factory.mktemp("e2e-models")
    build_models(root, [MODEL])
    return root


def stack_settings(
    database_url: str, redis_url: str, model_root: Path, s3_endpoint: str, base: Path
) -> Settings:
    settings = replace(
        Settings(env="test"),
        database_url=database_url,
        redis_url=redis_url,
        blob_url=f"file://{base / 'blobs'}",
        s3_endpoint_url=s3_endpoint,
        model_root=model_root,
        models=(MODEL,),
        chunk_size=CHUNK_SIZE,
        worker_concurrency=2,
        pending_timeout_s=PENDING_TIMEOUT_S,
        reconcile_interval_s=RECONCILE_INTERVAL_S,
        secret_key=SECRET,
        s3_import_roots=(S3_IMPORT_BUCKET,),
        rate_limit="100000/minute",
        limits=replace(ImageLimits(), min_side=MIN_SIDE),
    )
    settings.check()
    return settings


def clean_redis(url: str) -> None:
    """Empty the session's private Redis database, except the claim that keeps it private."""
    client = redis.Redis.from_url(url)
    try:
        keys = [key for key in client.scan_iter(count=1000) if key != _REDIS_CLAIM.encode()]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def stack(
    db_backend: str,
    e2e_database_url: str,
    redis_url: str,
    model_root: Path,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[E2EStack]:
    base = tmp_path_factory.mktemp(f"e2e-stack-{db_backend}")
    settings = stack_settings(e2e_database_url, redis_url, model_root, s3_endpoint, base)
    clean_redis(redis_url)
    running = E2EStack(settings, MODEL, base / "workdir").start()
    sys.stderr.write(f"\n[e2e] {db_backend} stack up in {running.start_s:.1f} s\n")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _stack_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the stack: every process of it is still running."""
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").check_alive()


# ---------------------------------------------------------------------------------------------
# Images: the synthetic workload, broken files, and the reference predictions
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """200 synthetic chest X-rays, at most 512 px: DICOM variants, PNG 8/16-bit, JPEG."""
    from bench.workload import generate_workload

    out = tmp_path_factory.mktemp("e2e-workload")
    return generate_workload(out, WORKLOAD_COUNT, WORKLOAD_SEED, "default", MAX_SIDE)


@pytest.fixture(scope="session")
def workload_paths(workload: list[Any]) -> list[Path]:
    return [item.path for item in workload]


@pytest.fixture(scope="session")
def reference(
    workload_paths: list[Path], broken_files: dict[str, Path], model_root: Path
) -> dict[str, dict[str, Any]]:
    """`medflow predict --json` (in process, no services) on every workload file and every
    broken file, keyed by path: what the pipeline must reproduce."""
    return predict_json([*workload_paths, *broken_files.values()], model_root)


def predict_json(paths: list[Path], model_root: Path) -> dict[str, dict[str, Any]]:
    """`medflow predict FILE... --model M --json`, run as the command (a subprocess), with the
    stack's image limits; one JSON object per file."""
    import json

    env = {**os.environ, "MEDFLOW_ENV": "test", "MEDFLOW_MIN_IMAGE_SIDE": str(MIN_SIDE)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    medflow = shutil.which("medflow", path=str(Path(sys.executable).parent)) or "medflow"
    found: dict[str, dict[str, Any]] = {}
    for batch in _batches(paths, 100):
        argv = [medflow, "predict", *map(str, batch), "--model", MODEL, "--json"]
        argv += ["--model-root", str(model_root)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"medflow predict failed:\n{done.stderr[-3000:]}"
        for line in done.stdout.splitlines():
            item = json.loads(line)
            found[item["file"]] = item
    missing = [str(p) for p in paths if str(p) not in found]
    assert not missing, f"medflow predict gave no result for {missing[:5]}"
    return found


def _batches(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@pytest.fixture(scope="session")
def broken_files(tmp_path_factory: pytest.TempPathFactory, workload: list[Any]) -> dict[str, Path]:
    """One file per failure mode, keyed by the error code it must produce."""
    out = tmp_path_factory.mktemp("e2e-broken")
    png = next(item.path for item in workload if item.path.suffix == ".png").read_bytes()
    files = {
        "EMPTY_FILE": ("empty.png", b""),
        "TRUNCATED_FILE": ("truncated.png", png[: len(png) // 2]),
        "UNKNOWN_FORMAT": ("random.bin", np.random.default_rng(3).bytes(4096)),
        "DICOM_NO_PIXEL_DATA": ("no-pixels.dcm", dicom_without_pixels()),
    }
    paths = {}
    for code, (name, data) in files.items():
        paths[code] = out / name
        paths[code].write_bytes(data)
    return paths


def dicom_without_pixels() -> bytes:
    """A well-formed CR file whose dataset has every image attribute but no Pixel Data."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = 256, 256
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
