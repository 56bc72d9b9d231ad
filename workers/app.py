"""The Celery app, built from the one Settings object (nothing connects until a task is sent)."""

from __future__ import annotations

from celery import Celery

from config.settings import Settings
from workers.queue_order import STRATEGY as QUEUE_ORDER
from workers.queues import DEFAULT_QUEUE, RESULTS_QUEUE

# Imported by worker processes only (the API sends tasks by name and never imports these).
# An inference worker (``celery -A workers.main``) loads only its own task, and so never imports
# database code; the collector (``celery -A workers.collector``) loads the tasks that write.
INFERENCE_MODULES = ("workers.signals", "workers.tasks.infer")
COLLECTOR_MODULES = (
    "workers.signals",
    "workers.tasks.collect",
    "workers.tasks.reconcile",
    "workers.tasks.outbox",
    "workers.tasks.anchor",
    "workers.collector_lock",  # one collector per deployment: the lock, taken at start-up
)
WORKER_START_TIMEOUT_S = 300.0


class MedflowCelery(Celery):
    """A Celery app that carries the Settings its tasks read (kept out of ``conf``, which Flower
    and ``celery inspect conf`` display)."""

    settings: Settings


def make_celery(settings: Settings, include: tuple[str, ...] = INFERENCE_MODULES) -> MedflowCelery:
    """The app; ``include`` names the task modules a worker of it loads (senders load none)."""
    app = MedflowCelery("medflow", include=list(include))
    app.settings = settings
    app.conf.update(_config(settings))
    return app


def settings_of(app: Celery) -> Settings:
    """The Settings a task runs with (from the environment for an app not made here)."""
    settings = getattr(app, "settings", None)
    return settings if isinstance(settings, Settings) else Settings.from_env()


def chunk_time_limits(settings: Settings) -> tuple[int, int]:
    """(soft, hard): the soft limit leaves the task a moment to log before the hard kill."""
    hard = settings.chunk_time_limit_s
    return max(1, hard - max(5, hard // 10)), hard


def image_time_limits(settings: Settings) -> tuple[int, int]:
    """(soft, hard) of an image retried alone, after its chunk kept dying or timed out."""
    hard = settings.image_time_limit_s
    return max(1, hard - max(1, hard // 10)), hard


def _config(settings: Settings) -> dict[str, object]:
    soft, hard = chunk_time_limits(settings)
    short = settings.short_task_limit_s
    return {
        "broker_url": settings.redis_url,
        # Results are never read (every task has ignore_result); the backend is set only so
        # that an accidental AsyncResult.get() fails fast against Redis rather than hangs.
        "result_backend": settings.redis_url,
        "task_ignore_result": True,
        # JSON only: a pickle payload from anyone who can write to Redis would run code here.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Ack after the task ran, and give the message back when the worker process dies, so a
        # chunk survives a crash or OOM kill; the collector's idempotent writes absorb the
        # resulting duplicates.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One chunk at a time per process: a prefetched chunk would wait behind a slow one while
        # another worker sits idle, and would be redelivered late if this worker dies.
        "worker_prefetch_multiplier": 1,
        # A pool process loads its model before it reports itself up; Celery's default (4 s)
        # kills a process that loads slowly (a big model, a busy host) and starts another.
        "worker_proc_alive_timeout": WORKER_START_TIMEOUT_S,
        "broker_transport_options": _transport_options(settings),
        # A lost broker connection means the unacked chunk will be redelivered anyway: stop
        # working on it instead of producing a second copy of its results (Celery 6 default).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": DEFAULT_QUEUE,
        # infer_chunk has no static route: the enqueuer names infer.<model> on each message.
        "task_routes": {
            "medflow.collect": {"queue": RESULTS_QUEUE},
            "medflow.reconcile": {"queue": RESULTS_QUEUE},
            "medflow.dispatch_outbox": {"queue": RESULTS_QUEUE},
            "medflow.anchor": {"queue": RESULTS_QUEUE},
        },
        "task_annotations": {
            "medflow.infer_chunk": {"soft_time_limit": soft, "time_limit": hard},
            "medflow.collect": {"time_limit": short},
            "medflow.reconcile": {"time_limit": short},
            "medflow.dispatch_outbox": {"time_limit": short},
            "medflow.anchor": {"time_limit": short},
        },
        # Events feed Flower's live view of tasks and workers.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Sent by `celery beat -S workers.beat:LockedScheduler`: one sender per deployment.
        "beat_schedule": {
            "reconcile": {
                "task": "medflow.reconcile",
                "schedule": float(settings.reconcile_interval_s),
                # A run that waited longer than one interval is superseded by the next one.
                "options": {"expires": float(settings.reconcile_interval_s)},
            },
            # Webhooks and SR deliveries written by the transactions that close jobs.
            "dispatch-outbox": {
                "task": "medflow.dispatch_outbox",
                "schedule": float(settings.outbox_interval_s),
                "options": {"expires": float(settings.outbox_interval_s)},
            },
            # Signed chain heads (workers/tasks/anchor.py); the collector alone holds the key.
            "anchor": {
                "task": "medflow.anchor",
                "schedule": float(settings.anchor_interval_s),
                "options": {"expires": float(settings.anchor_interval_s)},
            },
        },
    }


def _transport_options(settings: Settings) -> dict[str, int | str]:
    visibility = settings.visibility_timeout_s
    return {
        # A model's workers consume its priority queue and its batch queue: ask for the
        # priority queue first, every time (workers/queue_order.py), not in round robin.
        "queue_order_strategy": QUEUE_ORDER,
        # Redis redelivers an unacked message after this: it must exceed the chunk's hard time
        # limit (Settings.check enforces it), or long chunks would run twice.
        "visibility_timeout": visibility,
        # kombu sweeps for expired unacked messages every interval x throttle seconds (100 s by
        # default): scale the sweep to the timeout so a dead worker's chunk comes back within
        # about 10 % of it, at one cheap ZRANGE per sweep.
        "unacked_restore_interval": min(60, max(1, visibility // 10)),
        "unacked_restore_throttle": 1,
    }
