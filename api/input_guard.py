"""Refuse NUL bytes in a request's path, query and identifying headers, before anything reads them.

Postgres text cannot hold NUL: a job id, cursor or key containing one used to reach a query and
come back as a 500. Checked once for every route (multipart and JSON fields are checked where
they are parsed, in the intake).
"""

from __future__ import annotations

from flask import Flask, request

from api.errors import ApiError

CHECKED_HEADERS = ("Authorization", "Idempotency-Key")


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul)


def refuse_nul() -> None:
    for name, value in (request.view_args or {}).items():
        refuse_nul_in(name, str(value))
    for name, value in request.args.items(multi=True):
        refuse_nul_in(name, name + value)
    for header in CHECKED_HEADERS:
        refuse_nul_in(header, request.headers.get(header, ""))


def refuse_nul_in(name: str, value: str) -> None:
    if "\x00" in value:
        raise ApiError(
            "INVALID_PARAMETER", f"{name} must not contain NUL bytes", 400, {"parameter": name}
        )
