"""The app ``celery -A workers.main`` uses: built from MEDFLOW_* on import, connects nothing."""

from __future__ import annotations

from config.settings import Settings
from workers.app import make_celery

app = make_celery(Settings.from_env())
