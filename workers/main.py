"""The app ``celery -A workers.main`` uses (inference workers, Flower): built from MEDFLOW_* on
import, connects nothing. Its workers load only ``medflow.infer_chunk``: no database code."""

from __future__ import annotations

from config.settings import Settings
from workers.app import make_celery

app = make_celery(Settings.from_env())
