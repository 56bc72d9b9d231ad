"""The WSGI entry point for gunicorn (``gunicorn api.wsgi:app``): settings from the environment.

This is a process entry point, not a library module, so configuring logging here (with the PHI
filter) is the one import-time side effect it is allowed.
"""

from __future__ import annotations

from api.app import create_app
from api.readiness import monitor
from config.settings import load_or_exit
from privacy.phi import configure_logging

settings = load_or_exit()  # a refused setting: one line and exit, not a traceback
configure_logging(settings)
app = create_app(settings)
# Start this worker process's readiness thread now, so the first probe finds a snapshot.
monitor(app)
