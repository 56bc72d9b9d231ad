"""The one settings object, read from ``MEDFLOW_*`` environment variables once.

The Flask app factory and the Celery app both take a :class:`Settings`; tests build one from a
dict (``Settings.from_env({...})``) and never touch ``os.environ``. Nothing here connects to a
server.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from config.webhooks import WebhookConfigError, load_endpoints
from pipeline.limits import ImageLimits

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-insecure-secret-change-me"
DEV_RESULTS_KEY = "dev-insecure-results-key-change-me"
SHORT_TASK_LIMIT_S = 120


# The one list of variables, read here and written back by `api.stack_env.settings_to_env`.
TEXT_VARS = {
    "env": "MEDFLOW_ENV",
    "database_url": "MEDFLOW_DATABASE_URL",
    "redis_url": "MEDFLOW_REDIS_URL",
    "blob_url": "MEDFLOW_BLOB_URL",
    "s3_endpoint_url": "MEDFLOW_S3_ENDPOINT_URL",
    "secret_key": "MEDFLOW_SECRET_KEY",
    "rate_limit": "MEDFLOW_RATE_LIMIT",
    "audit_anchors": "MEDFLOW_AUDIT_ANCHORS",
    # Trust boundaries (issue 9)
    "results_key": "MEDFLOW_RESULTS_KEY",
    "anchor_signing_key": "MEDFLOW_ANCHOR_SIGNING_KEY",
    "anchor_verify_key": "MEDFLOW_ANCHOR_VERIFY_KEY",
    # Many hosts (issue 12): models from the object store.
    "model_repository": "MEDFLOW_MODEL_REPOSITORY",
    "metrics_address": "MEDFLOW_METRICS_ADDRESS",
    "metrics_token": "MEDFLOW_METRICS_TOKEN",
    "log_level": "MEDFLOW_LOG_LEVEL",
    "log_format": "MEDFLOW_LOG_FORMAT",
    # Webhooks (issue 10): endpoints (JSON or a JSON file), the allow-list, the base of links.
    "webhooks": "MEDFLOW_WEBHOOKS",
    "webhook_allow": "MEDFLOW_WEBHOOK_ALLOW",
    "public_url": "MEDFLOW_PUBLIC_URL",
}
NUMBER_VARS = {
    "chunk_size": "MEDFLOW_CHUNK_SIZE",
    "intra_op_threads": "MEDFLOW_INTRA_OP_THREADS",
    "worker_concurrency": "MEDFLOW_WORKER_CONCURRENCY",
    "visibility_timeout_s": "MEDFLOW_VISIBILITY_TIMEOUT_S",
    "chunk_time_limit_s": "MEDFLOW_CHUNK_TIME_LIMIT_S",
    "pending_timeout_s": "MEDFLOW_PENDING_TIMEOUT_S",
    "reconcile_interval_s": "MEDFLOW_RECONCILE_INTERVAL_S",
    "max_attempts": "MEDFLOW_MAX_ATTEMPTS",
    "max_request_bytes": "MEDFLOW_MAX_REQUEST_BYTES",
    "max_form_parts": "MEDFLOW_MAX_FORM_PARTS",
    "body_read_timeout_s": "MEDFLOW_BODY_READ_TIMEOUT_S",
    "max_uploads_per_key": "MEDFLOW_MAX_UPLOADS_PER_KEY",
    # A bad image fails alone (issue 13)
    "chunk_start_limit": "MEDFLOW_CHUNK_START_LIMIT",
    "image_time_limit_s": "MEDFLOW_IMAGE_TIME_LIMIT_S",
    "fault_hooks": "MEDFLOW_FAULT_HOOKS",
    # Outbox dispatcher (webhooks, SR delivery)
    "outbox_interval_s": "MEDFLOW_OUTBOX_INTERVAL_S",
    "outbox_max_attempts": "MEDFLOW_OUTBOX_MAX_ATTEMPTS",
    "outbox_backoff_s": "MEDFLOW_OUTBOX_BACKOFF_S",
    "outbox_lease_s": "MEDFLOW_OUTBOX_LEASE_S",
    # Trust boundaries (issue 9)
    "anchor_interval_s": "MEDFLOW_ANCHOR_INTERVAL_S",
    # Abandoned uploads end (issue 13)
    "open_job_idle_s": "MEDFLOW_OPEN_JOB_IDLE_S",
    "spool_idle_s": "MEDFLOW_SPOOL_IDLE_S",
    # Many hosts (issue 12): a worker's or the collector's own metrics endpoint (0: none).
    "metrics_port": "MEDFLOW_METRICS_PORT",
    # Interactive lane and queue caps (issue 14)
    "queue_cap": "MEDFLOW_QUEUE_CAP",
    "interactive_queue_cap": "MEDFLOW_INTERACTIVE_QUEUE_CAP",
}
LIMIT_VARS = {
    "max_bytes": "MEDFLOW_MAX_IMAGE_BYTES",
    "min_side": "MEDFLOW_MIN_IMAGE_SIDE",
    "max_side": "MEDFLOW_MAX_IMAGE_SIDE",
    "max_pixels": "MEDFLOW_MAX_IMAGE_PIXELS",
}


class SettingsError(ValueError):
    """A setting is missing or unsafe; raised at start-up, never later."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"  # "production" refuses unsafe defaults
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'medflow.db'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # "file:///abs/dir" or "s3://bucket/prefix"
    blob_url: str = f"file://{REPO_ROOT / 'var' / 'blobs'}"
    s3_endpoint_url: str | None = None  # e.g. a MinIO or moto server; None means AWS
    model_root: Path = REPO_ROOT / "models"
    models: tuple[str, ...] = ("nodule-detector",)  # models served by `medflow up`
    import_roots: tuple[Path, ...] = ()  # file:// URIs are accepted only under these
    # Images per infer_chunk message. Small enough that a job's first results and its last
    # chunk come soon (at ~0.1 s an image, a chunk is a second of one worker's time), big enough
    # that the collector's transaction per chunk stays cheap.
    chunk_size: int = 8
    intra_op_threads: int = 1
    worker_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    visibility_timeout_s: int = 3600  # Redis redelivers an unacked chunk after this
    chunk_time_limit_s: int = 120  # a chunk takes seconds; a hung one is cut at this
    pending_timeout_s: int = 300  # the reconciler re-queues images pending longer than this
    reconcile_interval_s: int = 30
    # Sends of one image before the reconciler gives up on it (ATTEMPTS_EXHAUSTED): a chunk
    # that kills its worker, or a model that cannot load, must not be re-queued forever.
    max_attempts: int = 5
    secret_key: str = DEV_SECRET  # HMAC key: pseudonyms and audit anchors
    # Where signed chain heads are kept (a directory, a JSON-lines file or an s3:// prefix):
    # `medflow audit anchor` writes there, and every verify checks the chain against them.
    audit_anchors: str | None = None
    rate_limit: str = "1200/minute"
    max_request_bytes: int = 512 * 1024 * 1024
    # Parts (files and fields) in one multipart request; more is a 413. `medflow submit` sends
    # at most api.client.BATCH_FILES files a request. Each part is a row and a spool to store
    # in one transaction: a cap bounds that work (spools hold no open file once received).
    max_form_parts: int = 1000
    # A request body that sends nothing for this long is cut (408 BODY_READ_TIMEOUT): the time
    # between two reads, never the whole upload, so a slow link is not refused.
    body_read_timeout_s: int = 60
    # Uploads one API key may have in progress in one API process (429 UPLOADS_PER_KEY past it),
    # out of api.upload_slots.UPLOAD_SLOTS: one key's stalled uploads cannot take them all.
    max_uploads_per_key: int = 2
    limits: ImageLimits = field(default_factory=ImageLimits)
    # A bad image fails alone (issue 13). A chunk started more than chunk_start_limit times (its
    # process died each time) is split: each image is retried alone, with image_time_limit_s as
    # its hard limit, and one that still kills or hangs its process fails by itself.
    chunk_start_limit: int = 2
    image_time_limit_s: int = 60
    # Test only (MEDFLOW_ENV=test): images carrying a fault marker kill or hang their worker.
    fault_hooks: int = 0
    # Outbox dispatcher (webhooks, SR delivery): how often it sends what is due, and the
    # attempts (with exponential backoff, capped at an hour) before a message is left DEAD.
    outbox_interval_s: int = 5
    outbox_max_attempts: int = 20
    outbox_backoff_s: int = 10  # the first retry's wait; it doubles, up to an hour
    # A claimed message whose outcome was never recorded (its dispatcher died mid-send) is sent
    # again after this: longer than a dispatch run may last (its time limit), or two would send.
    outbox_lease_s: int = 300
    # Webhooks (issue 10, config/webhooks.py): the endpoints (a JSON object, inline or a file's
    # path), the allow-list every endpoint's URL must be on (hosts or URL prefixes), and the
    # API's public base URL, for the links in a webhook's body (none: the links are paths).
    webhooks: str | None = None
    webhook_allow: str | None = None
    public_url: str | None = None
    # Trust boundaries (issue 9). The key that authenticates worker-to-collector messages: only
    # the workers and the collector hold it (never the API or Flower, which can put messages
    # on the broker), so a forged medflow.collect cannot write a result.
    results_key: str = DEV_RESULTS_KEY
    # Audit anchors are Ed25519-signed chain heads: the private key (a PEM file's path) only in
    # the anchoring process (the collector's beat), the public key (base64) wherever verify runs.
    anchor_signing_key: str | None = None
    anchor_verify_key: str | None = None
    # The beat anchors this often (and at every job's end); in production verify fails when the
    # newest anchor is older than twice this plus a minute.
    anchor_interval_s: int = 300
    # s3:// imports run on the server's credentials: only under these "bucket" or
    # "bucket/prefix" roots (none: no s3:// imports). A file:// import with more than one hard
    # link may be a link to a file outside the import roots: refused unless allowed.
    s3_import_roots: tuple[str, ...] = ()
    import_allow_hardlinks: bool = False
    # Production serves only models whose card says intended_use "clinical", unless the
    # deployment opts in to research/demo models here (their results say so either way).
    allow_nonclinical_models: bool = False
    # An open job that received no image for this long is sealed by the reconciler (its
    # uploader went away); an empty one is cancelled.
    open_job_idle_s: int = 3600
    # An upload spool (a temp file in the blob store) untouched this long has no writer left (a
    # request killed mid-body): the reconciler removes it. A live request writes to its spool
    # every few milliseconds and stores it within the API's request timeout, far less than this.
    spool_idle_s: int = 600
    # Many hosts (issue 12). The model repository: None means model_root (a directory); else
    # "s3://bucket/prefix" or "file:///dir". Workers and the API mirror an S3 repository into
    # model_cache_dir (cards on listing, graphs on first use, checked by sha256).
    model_repository: str | None = None
    model_cache_dir: Path = REPO_ROOT / "var" / "model-cache"
    # Workers and the collector serve their metrics on this port (0: not at all), and the
    # API's /metrics asks for "Authorization: Bearer <metrics_token>" when one is set: both
    # reveal internals (queues, models, failure rates), so they are internal endpoints.
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    metrics_token: str | None = None
    # Every process logs at this level, one JSON object per line ("json") or as text ("text").
    log_level: str = "INFO"
    log_format: str = "json"
    # Interactive lane and queue caps (issue 14): images queued or in progress per model and
    # lane beyond which a submission is refused (429 QUEUE_FULL). The batch cap is about five
    # minutes of work at 30 images/s; the interactive lane holds single urgent images only.
    queue_cap: int = 10_000
    interactive_queue_cap: int = 64

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        base = cls()
        values: dict[str, object] = {}
        for attr, var in TEXT_VARS.items():
            if env.get(var):
                values[attr] = env[var]
        # DATABASE_URL is the common convention; MEDFLOW_DATABASE_URL wins when both are set.
        database_url = env.get("MEDFLOW_DATABASE_URL") or env.get("DATABASE_URL")
        if database_url:
            values["database_url"] = database_url
        for attr, var in NUMBER_VARS.items():
            if env.get(var):
                values[attr] = _int(env, var)
        if env.get("MEDFLOW_MODEL_ROOT"):
            values["model_root"] = Path(env["MEDFLOW_MODEL_ROOT"])
        if env.get("MEDFLOW_MODEL_CACHE"):
            values["model_cache_dir"] = Path(env["MEDFLOW_MODEL_CACHE"])
        if env.get("MEDFLOW_MODELS"):
            values["models"] = tuple(m.strip() for m in env["MEDFLOW_MODELS"].split(",") if m)
        if env.get("MEDFLOW_IMPORT_ROOTS"):
            roots = env["MEDFLOW_IMPORT_ROOTS"].split(os.pathsep)
            values["import_roots"] = tuple(Path(r).resolve() for r in roots if r)
        values["limits"] = _limits(env, base.limits)
        # Trust boundaries (issue 9)
        if env.get("MEDFLOW_S3_IMPORT_ROOTS"):
            roots = env["MEDFLOW_S3_IMPORT_ROOTS"].split(",")
            values["s3_import_roots"] = tuple(r.strip() for r in roots if r.strip())
        if env.get("MEDFLOW_IMPORT_ALLOW_HARDLINKS"):
            values["import_allow_hardlinks"] = env["MEDFLOW_IMPORT_ALLOW_HARDLINKS"] == "1"
        if env.get("MEDFLOW_ALLOW_NONCLINICAL_MODELS"):
            values["allow_nonclinical_models"] = env["MEDFLOW_ALLOW_NONCLINICAL_MODELS"] == "1"
        settings = replace(base, **values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        if self.env not in ("development", "production", "test"):
            raise SettingsError("MEDFLOW_ENV must be development, production or test")
        weak_secret = self.secret_key == DEV_SECRET or len(self.secret_key) < 32
        if self.env == "production" and weak_secret:
            raise SettingsError("production needs MEDFLOW_SECRET_KEY: 32+ characters, not default")
        self._check_trust()
        if self.chunk_size < 1:
            raise SettingsError("MEDFLOW_CHUNK_SIZE must be >= 1")
        if self.max_attempts < 1:
            raise SettingsError("MEDFLOW_MAX_ATTEMPTS must be >= 1")
        if self.max_form_parts < 3:  # model, seal and one file
            raise SettingsError("MEDFLOW_MAX_FORM_PARTS must be >= 3")
        if self.body_read_timeout_s < 1 or self.max_uploads_per_key < 1:
            raise SettingsError("MEDFLOW_BODY_READ_TIMEOUT_S, MEDFLOW_MAX_UPLOADS_PER_KEY >= 1")
        if self.log_format not in ("json", "text"):
            raise SettingsError("MEDFLOW_LOG_FORMAT must be json or text")
        if self.queue_cap < 1 or self.interactive_queue_cap < 1:
            raise SettingsError("MEDFLOW_QUEUE_CAP and MEDFLOW_INTERACTIVE_QUEUE_CAP must be >= 1")
        if self.visibility_timeout_s <= self.chunk_time_limit_s:
            raise SettingsError("MEDFLOW_VISIBILITY_TIMEOUT_S must exceed the chunk time limit")
        if self.chunk_start_limit < 1 or self.image_time_limit_s < 2:
            raise SettingsError("MEDFLOW_CHUNK_START_LIMIT >= 1, MEDFLOW_IMAGE_TIME_LIMIT_S >= 2")
        if self.spool_idle_s < 1:
            raise SettingsError("MEDFLOW_SPOOL_IDLE_S must be >= 1")
        if self.fault_hooks and self.env != "test":
            raise SettingsError("MEDFLOW_FAULT_HOOKS is for tests only (MEDFLOW_ENV=test)")
        self._check_webhooks()

    def _check_webhooks(self) -> None:
        if self.outbox_backoff_s < 1:
            raise SettingsError("MEDFLOW_OUTBOX_BACKOFF_S must be >= 1")
        if self.outbox_lease_s <= self.short_task_limit_s:
            limit = self.short_task_limit_s
            raise SettingsError(f"MEDFLOW_OUTBOX_LEASE_S must exceed a dispatch run's {limit} s")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError("MEDFLOW_PUBLIC_URL must be an http(s) URL")
        try:  # refused at start-up: an endpoint off the allow-list never gets a first message
            load_endpoints(self.webhooks, self.webhook_allow)
        except WebhookConfigError as exc:
            raise SettingsError(str(exc)) from None

    def _check_trust(self) -> None:
        if self.anchor_interval_s < 1:
            raise SettingsError("MEDFLOW_ANCHOR_INTERVAL_S must be >= 1")
        if self.env != "production":
            return
        _require_entropy("MEDFLOW_SECRET_KEY", self.secret_key)
        # Only workers and the collector hold the results key (check_results_key, at worker
        # start): the API and Flower run without it. Where it is set, it must be a real key.
        if self.results_key != DEV_RESULTS_KEY:
            _require_entropy("MEDFLOW_RESULTS_KEY", self.results_key)
        if self.results_key == self.secret_key:
            raise SettingsError("MEDFLOW_RESULTS_KEY must differ from MEDFLOW_SECRET_KEY")
        if not (self.audit_anchors and self.anchor_verify_key):
            raise SettingsError(
                "production needs MEDFLOW_AUDIT_ANCHORS and MEDFLOW_ANCHOR_VERIFY_KEY (anchors)"
            )

    def check_results_key(self) -> None:
        """For the processes that sign or check results (workers, the collector) only."""
        if self.env == "production":
            _require_entropy("MEDFLOW_RESULTS_KEY", self.results_key)

    @property
    def short_task_limit_s(self) -> int:
        """The hard time limit of collect, reconcile and the outbox dispatch: short transactions,
        a hung one killed (and its message redelivered) well within the visibility timeout."""
        return min(SHORT_TASK_LIMIT_S, self.chunk_time_limit_s)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# Trust boundaries (issue 9): "a" * 32 is 32 characters and no secret at all.
MIN_SECRET_BITS = 128
_DEFLATE_OVERHEAD = 8  # zlib's header and checksum: bytes that say nothing about the key


def secret_bits(value: str) -> float:
    """A generous estimate of a key's entropy: the smaller of its length times the Shannon
    entropy of its characters and the bits left once deflate has removed repetition (32
    random bytes in base64 or hex: 200 bits or more; "a" * 32 or "0123456789" * 4: under 128).
    """
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    compressed = len(zlib.compress(value.encode("utf-8"), 9)) - _DEFLATE_OVERHEAD
    return min(per_char * len(value), 8.0 * compressed)


def load_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for a process entry point: a refused setting is one line on stderr, exit 2."""
    try:
        return Settings.from_env(environ)
    except SettingsError as exc:
        print(f"medflow: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _int(env: Mapping[str, str], var: str) -> int:
    try:
        return int(env[var])
    except ValueError as exc:
        raise SettingsError(f"{var} must be a whole number") from exc


def _limits(env: Mapping[str, str], base: ImageLimits) -> ImageLimits:
    values = {attr: _int(env, var) for attr, var in LIMIT_VARS.items() if env.get(var)}
    return replace(base, **values)


def _require_entropy(var: str, value: str) -> None:
    if value in (DEV_SECRET, DEV_RESULTS_KEY) or secret_bits(value) < MIN_SECRET_BITS:
        raise SettingsError(
            f"production needs {var} with real entropy: 32 random bytes, "
            "e.g. `openssl rand -base64 32`"
        )
