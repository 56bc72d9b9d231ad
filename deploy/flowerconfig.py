"""Flower settings: ``celery -A workers.main flower --conf=deploy/flowerconfig.py``.

Flower never runs without authentication: the credentials come from FLOWER_BASIC_AUTH
("user:password", from a secret) and start-up fails without them. It is read-only unless
MEDFLOW_FLOWER_WRITE=1 (workers/flower_setup.py), and lists every model's queue from the start.
"""

import os

from workers.flower_setup import configure_flower

basic_auth = [os.environ["FLOWER_BASIC_AUTH"]]
address = os.environ.get("FLOWER_ADDRESS", "0.0.0.0")
port = int(os.environ.get("FLOWER_PORT", "5555"))
# Task history stays in memory: it holds task arguments, and Postgres is the record anyway.
persistent = False
max_tasks = 10000
# Ask the workers to send task events (the pools also start with -E).
enable_events = True
# Forget workers that scaled away (seconds), instead of listing them offline forever.
purge_offline_workers = 600

configure_flower()
