"""Query-string parsing shared by the list endpoints: bounded integers, 400 when malformed."""

from __future__ import annotations

from flask import request

from api.errors import ApiError

# Cursors are compared with BIGINT columns: a larger number is a 400 here, not a database
# overflow (a 500) later.
INT64_MAX = 2**63 - 1
TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


def int_arg(name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_arg(name, "must be a whole number") from None
    if value > INT64_MAX:
        raise invalid_arg(name, "must be below 2**63")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise invalid_arg(name, f"must be {bound}")
    return value


def invalid_arg(name: str, message: str) -> ApiError:
    return ApiError("INVALID_PARAMETER", f"{name} {message}", 400, {"parameter": name})


def bool_arg(name: str) -> bool:
    raw = request.args.get(name, "").lower()
    if raw not in TRUE + FALSE:
        raise invalid_arg(name, "must be true or false")
    return raw in TRUE
