"""The API's rate limit: fixed windows per caller, checked in one Redis round trip per request.

Flask-Limiter made three (the hit, then GET and TTL for the X-RateLimit headers), on every
status poll. Here one Lua script counts the request in each window, starts a window that has
no expiry yet, and returns the counts and TTLs the headers need. The setting keeps its syntax
(``1200/minute``, ``10/second;1000/hour``; parsed by ``limits``). The budget is one per key
(per address without a valid key) across all of /v1/; probes and unknown routes are exempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, Response, g, request
from limits import parse_many
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger(__name__)

KEY_NAMESPACE = "medflow-rl"

# KEYS: one counter per window; ARGV: each window's length in seconds. Returns {count, ttl} per
# window. A counter without a TTL (none yet) gets one, so a window always ends.
_HIT = """
local reply = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local ttl = redis.call('TTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[i])
    redis.call('EXPIRE', key, ttl)
  end
  reply[i] = {count, ttl}
end
return reply
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, limit: str, key: Callable[[], str]) -> None:
        self.items = parse_many(limit)  # a bad setting fails here, at app creation
        self.key = key
        self._hit = client.register_script(_HIT)

    def init_app(self, app: Flask) -> None:
        app.before_request(self.check)
        app.after_request(self.headers)

    def check(self) -> None:
        if request.endpoint is None or not request.path.startswith("/v1/"):
            return
        caller = self.key()
        keys = [item.key_for(KEY_NAMESPACE, caller) for item in self.items]
        try:
            reply: Any = self._hit(keys=keys, args=[i.get_expiry() for i in self.items])
        except redis.RedisError as exc:
            # Fail open: a Redis outage must not turn every read into an error.
            log.warning("rate limit not checked: %s", type(exc).__name__)
            return
        # The window with the least left is the one the headers describe.
        left, ttl, amount = min(
            (item.amount - int(count), int(ttl), item.amount)
            for item, (count, ttl) in zip(self.items, reply, strict=True)
        )
        g.rate_limit = (amount, max(left, 0), int(time.time()) + ttl)
        if left < 0:
            raise TooManyRequests(retry_after=max(ttl, 1))

    def headers(self, response: Response) -> Response:
        state = g.get("rate_limit")
        if state is not None:
            amount, left, reset_at = state
            response.headers["X-RateLimit-Limit"] = str(amount)
            response.headers["X-RateLimit-Remaining"] = str(left)
            response.headers["X-RateLimit-Reset"] = str(reset_at)
        return response
