"""Production refuses a key without real entropy, in one line (issue 9).

Before, ``"a" * 32`` passed the start-up check, and a refused setting was a traceback.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import pytest

from config.settings import MIN_SECRET_BITS, REPO_ROOT, Settings, SettingsError, secret_bits

STRONG = base64.b64encode(secrets.token_bytes(32)).decode()


def production(secret: str, results: str) -> dict[str, str]:
    return {
        "MEDFLOW_ENV": "production",
        "MEDFLOW_SECRET_KEY": secret,
        "MEDFLOW_RESULTS_KEY": results,
        "MEDFLOW_AUDIT_ANCHORS": "s3://anchors/",
        "MEDFLOW_ANCHOR_VERIFY_KEY": "a" * 44,
    }


@pytest.mark.parametrize("weak", ["a" * 32, "ab" * 20, "0123456789" * 4, "password" * 5])
@pytest.mark.parametrize("which", ["secret", "results"])
def test_keys_without_entropy_are_refused(weak: str, which: str) -> None:
    secret, results = (weak, STRONG) if which == "secret" else (STRONG, weak)
    with pytest.raises(SettingsError, match="real entropy"):
        Settings.from_env(production(secret, results))


def test_random_keys_pass() -> None:
    for key in (STRONG, secrets.token_hex(32), secrets.token_urlsafe(32)):
        assert secret_bits(key) >= MIN_SECRET_BITS, key
    other = secrets.token_urlsafe(32)
    assert Settings.from_env(production(STRONG, other)).results_key == other


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "import api.wsgi"],
        ["-c", "import workers.main"],
        ["-m", "api.cli", "audit", "verify"],
    ],
    ids=["gunicorn app", "celery app", "medflow command"],
)
def test_a_refused_setting_is_one_line_not_a_traceback(argv: list[str]) -> None:
    env = {**os.environ, **production("a" * 32, STRONG), "PYTHONPATH": str(REPO_ROOT)}
    if argv[0] == "-m":
        argv = ["-c", "from api.cli import main; main()", *argv[2:]]
    done = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("medflow: production needs MEDFLOW_SECRET_KEY with real entropy")
