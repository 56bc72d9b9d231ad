"""Production refuses a missing, weak or shared results key (issue 9)."""

from __future__ import annotations

import secrets

import pytest

from config.settings import Settings, SettingsError

SECRET = secrets.token_urlsafe(32)
STRONG = secrets.token_urlsafe(32)


def production(**extra: str) -> dict[str, str]:
    anchors = {"MEDFLOW_AUDIT_ANCHORS": "s3://anchors/", "MEDFLOW_ANCHOR_VERIFY_KEY": "a" * 44}
    return {"MEDFLOW_ENV": "production", "MEDFLOW_SECRET_KEY": SECRET, **anchors, **extra}


@pytest.mark.parametrize(
    ("results_key", "says"), [("short", "MEDFLOW_RESULTS_KEY"), (SECRET, "differ")]
)
def test_production_refuses_a_weak_or_shared_results_key(results_key: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env(production(MEDFLOW_RESULTS_KEY=results_key))


def test_only_workers_and_the_collector_need_the_results_key() -> None:
    # The API and Flower start without it (they must never hold it) ...
    settings = Settings.from_env(production())
    # ... but a worker or the collector refuses to start (workers/signals.py, worker_init).
    with pytest.raises(SettingsError, match="MEDFLOW_RESULTS_KEY"):
        settings.check_results_key()
    Settings.from_env(production(MEDFLOW_RESULTS_KEY=STRONG)).check_results_key()


def test_production_takes_a_strong_results_key() -> None:
    settings = Settings.from_env(production(MEDFLOW_RESULTS_KEY=STRONG))
    assert settings.results_key == STRONG


@pytest.mark.parametrize("unset", ["MEDFLOW_AUDIT_ANCHORS", "MEDFLOW_ANCHOR_VERIFY_KEY"])
def test_production_needs_anchors(unset: str) -> None:
    environ = {**production(MEDFLOW_RESULTS_KEY=STRONG), unset: ""}
    with pytest.raises(SettingsError, match=unset):
        Settings.from_env(environ)
