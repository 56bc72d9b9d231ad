"""gunicorn settings for every deployment: ``gunicorn -c python:api.gunicorn_conf api.wsgi:app``.

`medflow up`, the compose file and the Kubernetes manifests all start the API this way, so the
access log and the metrics behave the same everywhere. Process counts and the bind address
stay on the command line (they differ per deployment).
"""

from __future__ import annotations

import os
from typing import Any

# One JSON object per request on stdout: what was asked, the answer, the time and the request
# id (the X-Request-Id the API returns). The path holds ids at most, never a client's file
# name; the query string is left out (a cursor or a filter is not needed to debug a request).
accesslog = "-"
access_log_format = (
    '{"ts": "%(t)s", "level": "INFO", "logger": "gunicorn.access", "method": "%(m)s", '
    '"path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s, '
    '"request_id": "%({x-request-id}o)s", "remote": "%(h)s"}'
)
loglevel = os.environ.get("MEDFLOW_LOG_LEVEL", "INFO").lower()
# gunicorn's own lines (the arbiter's too, which never imports the app) as JSON, through the
# PHI filter; the access line above is parsed back into fields (privacy.log_format).
_JSON = os.environ.get("MEDFLOW_LOG_FORMAT", "json") == "json"
_HANDLER = {"class": "logging.StreamHandler", "filters": ["phi"]}
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"phi": {"()": "privacy.phi.PhiRedactingFilter"}},
    "formatters": {
        "json": {"()": "privacy.log_format.JsonFormatter"} if _JSON else {"format": "%(message)s"}
    },
    "handlers": {
        "console": {**_HANDLER, "formatter": "json", "stream": "ext://sys.stdout"},
        "error_console": {**_HANDLER, "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"]},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}


def child_exit(server: Any, worker: Any) -> None:
    """Prometheus multiprocess mode: a dead worker's live gauges must stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def pre_request(worker: Any, req: Any) -> None:
    """gunicorn's own debug line, and the request handed to api.body_timeout (this thread)."""
    worker.log.debug("%s %s", req.method, req.path)
    from api.body_timeout import bind_server_request

    bind_server_request(req)
