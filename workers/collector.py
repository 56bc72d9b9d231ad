"""The app of the collector, ``celery -A workers.collector worker -Q results -c 1 -B``.

Built from MEDFLOW_* on import, connects nothing. Its worker loads the tasks that write to the
database (collect, and the beat's reconcile and outbox dispatch); inference workers never do.
"""

from __future__ import annotations

from config.settings import load_or_exit
from workers.app import COLLECTOR_MODULES, make_celery

app = make_celery(load_or_exit(), include=COLLECTOR_MODULES)  # a refused setting: one line
