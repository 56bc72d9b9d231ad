"""Stalled upload bodies against a real gunicorn API (issue 9): 18 of them from one key made
/healthz time out. A body that stops arriving is cut with 408 BODY_READ_TIMEOUT (and the
connection closed), one key's concurrent uploads are capped with 429 UPLOADS_PER_KEY, and the
health probe answers fast throughout."""

from __future__ import annotations

import select
import time
from dataclasses import replace

import pytest

from db.session import make_engine, make_session_factory
from tests.integration.api.conftest import MODEL, PNG, api_settings_for, build_env, copy_sqlite
from tests.integration.api.live_api import LiveApi, read_answer, timed_get

TIMEOUT_S = 3
SLACK_S = 4  # a loaded 2-core machine; the answer without the fix never comes at all
BOUNDARY = "stalled-upload-boundary"


def upload(token: str, payload: bytes) -> tuple[str, bytes]:
    """The head and the whole body of a POST /v1/jobs with one file."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{MODEL}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    return head, body


@pytest.fixture
def sqlite_env(settings_factory, sqlite_template, redis_url, redis_client, tmp_path):
    """A SQLite database only: sockets and threads do not depend on the backend."""
    database_url = copy_sqlite(sqlite_template, tmp_path / "medflow.db")
    settings = api_settings_for(settings_factory(database_url=database_url), redis_url, tmp_path)
    engine = make_engine(settings)
    yield build_env(settings, make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def keys(sqlite_env):
    return sqlite_env.keys


@pytest.fixture
def live(sqlite_env, tmp_path):
    settings = replace(sqlite_env.settings, body_read_timeout_s=TIMEOUT_S, max_uploads_per_key=1)
    with LiveApi(settings, tmp_path / "api.log") as api:
        yield api


def post_whole(live: LiveApi, token: str):
    head, body = upload(token, PNG + b"whole")
    with live.send(head, body) as sock:
        return read_answer(sock, 30)


def test_a_stalled_body_is_cut_and_one_key_cannot_hold_every_thread(live, keys):
    token = keys.tokens["submitter"]
    head, body = upload(token, PNG + b"x" * 50_000)
    stalled = live.send(head, body[:-1000])  # then nothing more: the client hangs
    started = time.monotonic()
    try:
        # Time for the stalled request to reach its view (a thread takes it at once); it has
        # no answer yet: it is waiting for the rest of its body.
        time.sleep(1.0)
        assert select.select([stalled], [], [], 0)[0] == []
        # The key's one upload is the stalled one: another from it is refused at once.
        over = post_whole(live, token)
        # Meanwhile the probe and other keys' uploads are served.
        probes = [timed_get(live.port, "/healthz") for _ in range(5)]
        other = post_whole(live, keys.tokens["admin"])
        answer = read_answer(stalled, TIMEOUT_S + SLACK_S)
        elapsed = answer.received_at - started
    finally:
        stalled.close()

    assert over.status == 429, over.body
    assert over.body["error"]["code"] == "UPLOADS_PER_KEY"
    assert over.body["error"]["details"] == {"max_uploads_per_key": 1}
    assert over.headers["retry-after"] == "2"
    assert sorted(probes)[2] < 0.5 and max(probes) < TIMEOUT_S, probes  # a loaded machine
    assert other.status == 202, other.body

    assert answer.status == 408, answer.body
    assert answer.body["error"]["code"] == "BODY_READ_TIMEOUT"
    assert answer.headers["connection"] == "close" and answer.closed
    assert TIMEOUT_S - 0.5 < elapsed < TIMEOUT_S + SLACK_S, elapsed
    # The key's upload ended with the 408: the key may upload again.
    assert post_whole(live, token).status == 202


def test_a_slow_body_that_keeps_coming_is_not_cut(live, keys):
    head, body = upload(keys.tokens["submitter"], PNG + b"y" * 4000)
    sock = live.send(head, b"")
    try:
        # Longer in all than the timeout, but never silent for as long as it.
        pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
        pause = (TIMEOUT_S + 1) / len(pieces)
        for piece in pieces:
            time.sleep(pause)
            sock.sendall(piece)
        answer = read_answer(sock, 30)
    finally:
        sock.close()
    assert answer.status == 202, answer.body
    assert pause * len(pieces) > TIMEOUT_S


def test_the_connection_after_a_cut_is_not_reused(live, keys):
    # What the rest of a cut body would look like must never be read as a request.
    head, body = upload(keys.tokens["submitter"], PNG)
    sock = live.send(head, body[:20])
    try:
        answer = read_answer(sock, TIMEOUT_S + SLACK_S)
        assert answer.status == 408 and answer.closed
        with pytest.raises(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.sendall(b"x" * 100_000)  # a reset shows on a later send
            read_answer(sock, 2)
    finally:
        sock.close()
