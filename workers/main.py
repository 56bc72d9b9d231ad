"""The app ``celery -A workers.main`` uses (inference workers, Flower): built from MEDFLOW_* on
import, connects nothing. Its workers load only ``medflow.infer_chunk``: no database code."""

from __future__ import annotations

from config.settings import load_or_exit
from workers.app import make_celery

app = make_celery(load_or_exit())  # a refused setting: one line and exit, not a traceback
