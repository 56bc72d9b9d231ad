"""The Celery configuration that reliability depends on (see the comments in workers/app.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from config.settings import Settings, SettingsError
from workers.app import chunk_time_limits, image_time_limits, make_celery


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
    # A pool process loading its model is not killed by Celery's 4 s start-up default.
    assert conf.worker_proc_alive_timeout >= 60


def test_time_limits_are_ordered_and_under_the_visibility_timeout() -> None:
    settings = Settings(env="test")
    soft, hard = chunk_time_limits(settings)
    assert 0 < soft < hard == settings.chunk_time_limit_s < settings.visibility_timeout_s


def test_secret_settings_stay_out_of_the_celery_conf() -> None:
    settings = replace(Settings(env="test"), secret_key="s" * 40)
    app = make_celery(settings)
    assert app.settings.secret_key == "s" * 40
    assert "s" * 40 not in repr(dict(app.conf))


def test_an_image_alone_gets_a_shorter_limit_than_its_chunk_by_default() -> None:
    settings = Settings(env="test")
    soft, hard = image_time_limits(settings)
    assert 0 < soft < hard == settings.image_time_limit_s < settings.chunk_time_limit_s


def test_fault_hooks_are_refused_outside_tests() -> None:
    Settings.from_env({"MEDFLOW_ENV": "test", "MEDFLOW_FAULT_HOOKS": "1"})
    with pytest.raises(SettingsError, match="FAULT_HOOKS"):
        Settings.from_env({"MEDFLOW_ENV": "development", "MEDFLOW_FAULT_HOOKS": "1"})


def test_the_collector_beats_the_outbox_and_inference_workers_load_no_collector_task() -> None:
    from workers.app import COLLECTOR_MODULES, INFERENCE_MODULES

    settings = replace(Settings(env="test"), outbox_interval_s=3)
    conf = make_celery(settings, include=COLLECTOR_MODULES).conf
    entry = conf.beat_schedule["dispatch-outbox"]
    assert (entry["task"], entry["schedule"]) == ("medflow.dispatch_outbox", 3.0)
    assert conf.task_routes["medflow.dispatch_outbox"] == {"queue": "results"}
    assert "workers.tasks.outbox" in COLLECTOR_MODULES
    assert not {"workers.tasks.collect", "workers.tasks.outbox"} & set(INFERENCE_MODULES)
    assert list(make_celery(settings).conf.include) == list(INFERENCE_MODULES)
