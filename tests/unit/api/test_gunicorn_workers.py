"""The API runs threaded gunicorn workers everywhere it is started, with a connection pool per
process that covers its threads (a thread never waits for a database connection)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.stack import API_THREADS, API_WORKERS, Stack
from config.settings import REPO_ROOT, Settings
from db.session import POOL_SIZE

DEPLOY_FILES = [
    REPO_ROOT / "docker-compose.yml",
    REPO_ROOT / "deploy" / "k8s" / "base" / "api.yaml",
]


def flags_after(tokens: list[str], start: int) -> dict[str, str]:
    """``--name value`` pairs of the command starting at ``tokens[start]``, up to the next
    non-flag token (the end of that command)."""
    flags, index = {}, start
    while index + 1 < len(tokens) and tokens[index].startswith("--"):
        flags[tokens[index]] = tokens[index + 1]
        index += 2
    return flags


def gunicorn_flags(argv: list[str]) -> dict[str, str]:
    start = argv.index("api.wsgi:app") + 1
    return flags_after(argv, start)


def test_stack_runs_gthread_workers(tmp_path: Path) -> None:
    stack = Stack(Settings(env="test"), ["tiny"], workdir=tmp_path)
    flags = gunicorn_flags(stack._gunicorn())
    assert flags["--worker-class"] == "gthread"
    assert flags["--threads"] == str(API_THREADS) and API_THREADS > 1
    assert flags["--workers"] == str(API_WORKERS)


def test_pool_covers_the_threads() -> None:
    # Each request holds at most one connection (tests/integration/api/test_poll_cost.py).
    assert POOL_SIZE >= API_THREADS


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.name)
def test_deploy_commands_match_the_stack(path: Path) -> None:
    # Quotes, commas and brackets are only YAML/JSON syntax around the argv here.
    tokens = re.findall(r'[^\s",\[\]]+', path.read_text())
    starts = [i for i, token in enumerate(tokens) if token == "api.wsgi:app"]
    assert starts, f"no gunicorn command in {path}"
    for start in starts:
        flags = flags_after(tokens, start + 1)
        assert flags.get("--worker-class") == "gthread", path
        assert flags.get("--threads") == str(API_THREADS), path
        assert flags.get("--workers") == str(API_WORKERS), path
