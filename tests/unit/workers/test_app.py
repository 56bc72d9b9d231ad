"""The Celery configuration that reliability depends on (see the comments in workers/app.py)."""

from __future__ import annotations

from dataclasses import replace

from config.settings import Settings
from workers.app import chunk_time_limits, make_celery


def test_reliability_settings() -> None:
    settings = replace(Settings(env="test"), visibility_timeout_s=900, chunk_time_limit_s=300)
    conf = make_celery(settings).conf

    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 900
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_default_queue != "celery"
    assert conf.task_routes["medflow.collect"] == {"queue": "results"}
    assert conf.beat_schedule["reconcile"]["task"] == "medflow.reconcile"


def test_time_limits_are_ordered_and_under_the_visibility_timeout() -> None:
    settings = Settings(env="test")
    soft, hard = chunk_time_limits(settings)
    assert 0 < soft < hard == settings.chunk_time_limit_s < settings.visibility_timeout_s


def test_secret_settings_stay_out_of_the_celery_conf() -> None:
    settings = replace(Settings(env="test"), secret_key="s" * 40)
    app = make_celery(settings)
    assert app.settings.secret_key == "s" * 40
    assert "s" * 40 not in repr(dict(app.conf))
