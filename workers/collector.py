"""The app of the collector, ``celery -A workers.collector worker -Q results -c 1 -B``.

Built from MEDFLOW_* on import, connects nothing. Its worker loads the tasks that write to the
database (collect, and the beat's reconcile and outbox dispatch); inference workers never do.
"""

from __future__ import annotations

from config.settings import Settings
from workers.app import COLLECTOR_MODULES, make_celery

app = make_celery(Settings.from_env(), include=COLLECTOR_MODULES)
