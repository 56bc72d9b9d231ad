"""Bearer API keys: who is calling, and whether their role may call this endpoint.

The key is looked up once per request (the rate limiter needs it before the view runs) and
kept on ``flask.g.api_key`` as a plain :class:`Caller`, detached from any database session.
Nothing is cached across requests: a revoked key is refused on its very next request, in every
process. The lookup runs in the request's read-only session, which a view guarded with
``require(..., reads_in_request_session=True)`` goes on using (a status poll: one connection);
for any other view it is closed before the view runs, so no read stays open across a slow upload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from api.errors import ApiError
from api.extensions import end_request_session, request_session
from db.keys import authenticate
from db.models import Role

P = ParamSpec("P")
R = TypeVar("R")

REALM = 'Bearer realm="medflow"'


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    role: Role
    prefix: str

    @property
    def actor(self) -> str:
        """How the audit chain names this caller."""
        return f"key:{self.id}"

    def sees_all_jobs(self) -> bool:
        return self.role in (Role.OPERATOR, Role.ADMIN)


def current_caller() -> Caller | None:
    """The authenticated caller, or None (no, malformed, unknown or revoked key)."""
    if "api_key" not in g:
        g.api_key = _authenticate(_bearer_token())
    found: Caller | None = g.api_key
    return found


def rate_limit_key() -> str:
    caller = current_caller()
    if caller is None:
        return f"ip:{request.remote_addr}"  # slows down guessing keys, too
    # The public prefix rather than the row id: ids restart when a database is rebuilt, and two
    # deployments (or test databases) sharing a Redis must not share a budget.
    return f"key:{caller.prefix}"


def require(
    *roles: Role, reads_in_request_session: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Allow the view to callers whose role is in ``roles``: 401 without a key, 403 otherwise.

    ``reads_in_request_session``: the view only reads, through ``request_session()``.
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            who = current_caller()
            if who is None:
                raise unauthenticated()
            if who.role not in roles:
                raise ApiError(
                    "FORBIDDEN", "this key's role may not do this", 403, {"role": str(who.role)}
                )
            if not reads_in_request_session:
                end_request_session()
            return view(*args, **kwargs)

        return guarded

    return decorate


def caller() -> Caller:
    """The caller inside a view guarded by :func:`require`."""
    found = current_caller()
    assert found is not None, "view is not guarded by @require"
    return found


def unauthenticated() -> ApiError:
    sent = _bearer_token() is not None
    challenge = f'{REALM}, error="invalid_token"' if sent else REALM
    message = "invalid or revoked API key" if sent else "an API key is required"
    return ApiError("UNAUTHENTICATED", message, 401, headers={"WWW-Authenticate": challenge})


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _authenticate(token: str | None) -> Caller | None:
    if token is None:
        return None
    key = authenticate(request_session(), token)
    if key is None:
        return None
    return Caller(id=key.id, name=key.name, role=key.role, prefix=key.prefix)
