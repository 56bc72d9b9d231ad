"""An inference worker process that has run infer_chunk has imported no database code.

import-linter checks the import graph (make lint); this checks the running process, which
also catches an import made by a string (Celery's ``include``, a signal handler, a plugin).
"""

from __future__ import annotations

import io
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image

from config.settings import Settings
from tests.blobs import put_bytes
from tests.integration.workers.helpers import WorkerProcess, collect_messages
from workers.enqueue import enqueue_images

pytestmark = pytest.mark.slow

PROBE = Path(__file__).with_name("modules_probe.py")
FORBIDDEN = ("db", "intake", "api", "sqlalchemy", "alembic", "psycopg2")


def png() -> bytes:
    out = io.BytesIO()
    Image.fromarray((np.arange(96 * 96) % 251).astype(np.uint8).reshape(96, 96)).save(out, "PNG")
    return out.getvalue()


def test_an_inference_worker_never_imports_database_code(
    worker_settings: Settings, celery_app: Any, store: Any, broker: redis.Redis, tmp_path: Path
) -> None:
    dump = tmp_path / "modules.json"
    worker = WorkerProcess(
        worker_settings,
        tmp_path / "worker.log",
        launcher=[sys.executable, str(PROBE)],
        pool="solo",  # the process that runs the task is the one that dumps its modules
        env={"MEDFLOW_TEST_MODULES_DUMP": str(dump)},
    ).start()
    try:
        job = secrets.token_hex(16)
        enqueue_images(celery_app, job, "tiny:1", [(1, put_bytes(store, png()).key)], 16)
        (message,) = collect_messages(broker, job)
        assert message["args"][0]["images"][0]["status"] == "ok"
    finally:
        worker.stop()
    modules = json.loads(dump.read_text())
    # The dump is of the process that did the work: the task module and the runtime are there.
    assert {"workers.tasks.infer", "onnxruntime", "storage.blobstore"} <= set(modules)
    assert [name for name in modules if name.split(".")[0] in FORBIDDEN] == []
