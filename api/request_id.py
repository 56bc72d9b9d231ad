"""Request ids: ``X-Request-Id`` taken from the caller (or a proxy) or made, returned on every
response, and bound to every log line of the request (with the job id its path names)."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from privacy.log_format import bind, reset

HEADER = "X-Request-Id"
# A caller's id is kept only if it is a plain token: it is echoed in a header and in logs.
ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_answer)
    app.teardown_request(_end)


def _begin() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = given if ACCEPTED.fullmatch(given) else uuid.uuid4().hex
    job_id = (request.view_args or {}).get("job_id")
    g.request_log_token = bind(request_id=g.request_id, job_id=job_id)


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
    return response


def _end(_: BaseException | None) -> None:
    token = g.pop("request_log_token", None)
    if token is not None:
        reset(token)
