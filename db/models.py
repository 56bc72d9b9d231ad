"""SQLAlchemy 2 models: the schema is the contract between the API, the collector and the audit.

Postgres is the source of truth (DESIGN.md). The schema is created only by the Alembic
migrations in `db/migrations`; a test fails when these models and the migrations drift apart.
Results live on the image row: one image, one result, whatever the number of deliveries.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from messages.model_ref import model_ref_of

# Named constraints, so migrations are stable and `alembic check` is meaningful.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """TIMESTAMP WITH TIME ZONE that always gives back an aware UTC datetime.

    SQLite has no time zones: SQLAlchemy drops tzinfo on write and returns naive values, which
    breaks arithmetic with aware datetimes and ISO 8601 output. Normalising to UTC on both
    sides makes SQLite and Postgres behave the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # A naive value is taken as UTC (datetime.utcnow() style), never as local time.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Role(enum.StrEnum):
    SUBMITTER = "submitter"  # creates jobs; reads its own jobs and results
    OPERATOR = "operator"  # reads every job's status, cancels; never reads results
    AUDITOR = "auditor"  # audit verify and events
    ADMIN = "admin"  # everything, model registration, key management


class JobStatus(enum.StrEnum):
    OPEN = "open"  # accepting images (already processing those added); not yet sealed
    QUEUED = "queued"  # sealed, chunks sent, no result yet
    RUNNING = "running"  # at least one result
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"  # some images failed
    FAILED = "failed"  # every image failed
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATUSES


FINAL_JOB_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED}
)


class Lane(enum.StrEnum):
    """Which queue of its model a job's chunks go to (workers drain interactive first)."""

    BATCH = "batch"
    INTERACTIVE = "interactive"


class ImageStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK, not a native PG enum: adding a member is a one-line migration.
    # create_constraint: SQLAlchemy 1.4+ no longer emits the CHECK unless asked.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=_values,
    )


def _values(cls: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in cls]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    # "mf_<prefix>_<secret>": the prefix finds the row, sha256(secret) proves the key.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ModelVersion(Base):
    """A model version known to the service (mirrors the model repository on disk)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=False)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def ref(self) -> str:
        return model_ref_of(self.name, self.version)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_key_id", "idempotency_key", name="uq_jobs_owner_idempotency"),
        Index("ix_jobs_owner_created", "owner_key_id", "created_at"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    owner_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"))
    total: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # first result
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Last time images were added (NULL: never, read as created_at); an open job idle too long
    # is sealed by the reconciler (db.job_expiry).
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Interactive lane, deadlines and ETAs (issue 14).
    lane: Mapped[Lane] = mapped_column(_enum(Lane, "lane"), default=Lane.BATCH)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The lane's admitted count just after this job's last image: what is still to be done
    # ahead of (and including) it is queue_end - done (db/model_queue.py).
    queue_end: Mapped[int | None] = mapped_column(BigInteger)

    images: Mapped[list[Image]] = relationship(back_populates="job", lazy="raise")

    @property
    def pending(self) -> int:
        return self.total - self.succeeded - self.failed - self.cancelled

    @property
    def model_ref(self) -> str:
        """``"name:version@sha256"``: how tasks name the job's model, pinned to the registry's
        sha256 of its graph, so a worker on any host refuses a graph that differs."""
        return f"{model_ref_of(self.model_name, self.model_version)}@{self.model_sha256}"


class ModelQueue(Base):
    """One model's queues as counters, and its measured rate (db/model_queue.py).

    ``admitted - done`` per lane is what is queued or in progress: exact, because each counter
    changes in the transaction that changes the images (add, result, cancel). The rate is an
    EWMA of images/s over windows in which the model's workers had a backlog.
    """

    __tablename__ = "model_queues"

    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    batch_admitted: Mapped[int] = mapped_column(BigInteger, default=0)
    batch_done: Mapped[int] = mapped_column(BigInteger, default=0)
    interactive_admitted: Mapped[int] = mapped_column(BigInteger, default=0)
    interactive_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_per_s: Mapped[float | None] = mapped_column(Float)
    window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_images: Mapped[int] = mapped_column(Integer, default=0)


class Image(Base):
    """One submitted image and, once collected, its result."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("job_id", "position", name="uq_images_job_position"),
        Index("ix_images_status_enqueued", "status", "enqueued_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    position: Mapped[int] = mapped_column(Integer)  # order of submission within the job
    # The client's name for the image (file name or URI). It may itself carry PHI, so it is
    # returned to the job's owner only and never sent in a task, a log line or an audit payload.
    ref: Mapped[str] = mapped_column(Text)
    blob_key: Mapped[str] = mapped_column(String(64))  # sha256 of the bytes, hex
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[ImageStatus] = mapped_column(_enum(ImageStatus, "image_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times sent to a queue
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The result (set once by the collector; later deliveries of the same image are ignored)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    positive: Mapped[list[str] | None] = mapped_column(JSON)
    format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    timings_ms: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # PHI-free, incl. pseudonyms

    job: Mapped[Job] = relationship(back_populates="images", lazy="raise")


class AuditEvent(Base):
    """One link of the tamper-evident chain; rows are only ever inserted.

    ``hash = sha256(prev_hash || canonical_json(event))`` (see db/audit.py). Postgres refuses
    UPDATE, DELETE and TRUNCATE on this table through a trigger installed by the migration.
    """

    __tablename__ = "audit_events"
    # Result receipts find an image's events by object (migration 0006).
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))  # "key:<id>" or "service:<name>"
    action: Mapped[str] = mapped_column(String(64))  # e.g. "job.submitted", "image.result"
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # PHI-free
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # to send (again) at next_attempt_at
    SENT = "sent"  # delivered; a fact row: fanned out to its subscribers' rows
    DEAD = "dead"  # gave up after the dispatcher's maximum attempts: an operator looks


class OutboxEvent(Base):
    """A message for the outside world (a webhook, an SR delivery), written in the transaction
    of the fact it reports and sent afterwards, at least once, by the outbox dispatcher.

    The row written with the fact has no ``subscriber``; the dispatcher fans it out into one
    row per subscriber of its kind (``source_id`` pointing back), so each subscriber (a
    webhook endpoint, SR delivery) has its own attempts, backoff and outcome."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_due", "status", "next_attempt_at"),
        UniqueConstraint("source_id", "subscriber", name="uq_outbox_events_source_subscriber"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # e.g. "job.finished": picks the subscribers
    subscriber: Mapped[str | None] = mapped_column(String(64))  # None: the fact, to fan out
    source_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("outbox_events.id")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids and counts only, never PHI
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # handler calls so far
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus, "outbox_status"))
