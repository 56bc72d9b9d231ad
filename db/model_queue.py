"""A model's queues as counters: admission under a cap, work done, the measured rate, ETAs.

Every change happens in the transaction that changes the images it counts (add_images admits,
the collector and cancel mark done), so ``admitted - done`` per lane is exactly the number of
images still pending, without counting rows. Admission is one conditional UPDATE: the row lock
it takes serialises concurrent submissions of one model, so a cap cannot be overshot. Lock
order: job, then its images, then this row (as everywhere in db/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Job, Lane, ModelQueue

# The rate is sampled over windows of at least this long (a chunk every ~0.25 s on 2 cores: a
# sample spans several chunks, so two workers finishing together do not look like a burst).
RATE_WINDOW_S = 2.0
# Weight of a new sample: about the last ten windows (20 s) count.
RATE_ALPHA = 0.2


class QueueFull(Exception):
    """Admitting the images would put more than ``cap`` in the model's lane."""

    def __init__(self, queued: int, cap: int, requested: int, rate_per_s: float | None) -> None:
        super().__init__(f"{queued} images queued, {requested} more asked, cap {cap}")
        self.queued, self.cap, self.requested, self.rate_per_s = queued, cap, requested, rate_per_s


@dataclass(frozen=True)
class Outlook:
    """What an ETA rests on: images to be done before a job's last one, and the model's rate."""

    images_ahead: int
    images_left: int
    rate_per_s: float | None

    @property
    def eta_s(self) -> float | None:
        if not self.rate_per_s:
            return None
        return round((self.images_ahead + self.images_left) / self.rate_per_s, 1)

    def basis(self) -> dict[str, object]:
        rate = None if self.rate_per_s is None else round(self.rate_per_s, 3)
        return {"images_ahead": self.images_ahead, "rate_per_s": rate}


def _counters(lane: Lane) -> tuple[str, str]:
    return f"{lane.value}_admitted", f"{lane.value}_done"


def queued(row: ModelQueue, lane: Lane) -> int:
    admitted, done = _counters(lane)
    return int(getattr(row, admitted)) - int(getattr(row, done))


def ensure_row(session: Session, model_name: str) -> None:
    if session.get(ModelQueue, model_name) is not None:
        return
    try:
        with session.begin_nested():  # a concurrent first submission may insert it first
            session.add(_empty(model_name))
    except IntegrityError:
        pass


def _empty(model_name: str) -> ModelQueue:
    return ModelQueue(
        model_name=model_name,
        batch_admitted=0,
        batch_done=0,
        interactive_admitted=0,
        interactive_done=0,
        window_images=0,
    )


def admit(session: Session, model_name: str, lane: Lane, count: int, cap: int | None) -> int:
    """Count ``count`` more images in the lane; returns the lane's admitted total after them.

    Raises QueueFull (changing nothing) when the lane would then hold more than ``cap``.
    """
    ensure_row(session, model_name)
    admitted, done = _counters(lane)
    column, done_column = getattr(ModelQueue, admitted), getattr(ModelQueue, done)
    query = (
        update(ModelQueue)
        .where(ModelQueue.model_name == model_name)
        .values({admitted: column + count})
        .returning(column)
    )
    if cap is not None:
        query = query.where(column + count - done_column <= cap)
    total = session.execute(query, execution_options={"synchronize_session": False}).scalar()
    if total is None:
        row = session.get_one(ModelQueue, model_name, populate_existing=True)
        raise QueueFull(queued(row, lane), cap or 0, count, row.rate_per_s)
    return int(total)


def mark_done(session: Session, model_name: str, lane: Lane, count: int, now: datetime) -> None:
    """``count`` images of the lane left the queue (results or cancel); feeds the rate."""
    row = session.get(ModelQueue, model_name, with_for_update=True, populate_existing=True)
    if row is None or count <= 0:
        return
    admitted, done = _counters(lane)
    setattr(row, done, min(int(getattr(row, done)) + count, int(getattr(row, admitted))))
    _sample_rate(row, lane, count, now)
    session.flush()


def _sample_rate(row: ModelQueue, lane: Lane, count: int, now: datetime) -> None:
    """Images/s over windows in which the workers never ran dry.

    A window whose queue emptied measured the arrivals, not the model (single interactive
    images, an upload slower than the workers): it is dropped. The chunk that opens a window
    is not counted, since its work started before the window did. While batch images are
    queued, only they are counted: urgent images slipped in between their chunks then show as
    a slower batch (which is what a batch's ETA needs), not as more images per second (one
    urgent image counted like a batch one made the rate 20% too high in the benchmark).
    """
    backlog = queued(row, Lane.BATCH) + queued(row, Lane.INTERACTIVE)
    start = row.window_started_at
    if start is None or backlog == 0:
        row.window_started_at = now if backlog else None
        row.window_images = 0
        return
    if lane == Lane.INTERACTIVE and queued(row, Lane.BATCH) > 0:
        return
    row.window_images += count
    elapsed = (now - start).total_seconds()
    if elapsed < RATE_WINDOW_S:
        return
    sample = row.window_images / elapsed
    old = row.rate_per_s
    row.rate_per_s = sample if old is None else RATE_ALPHA * sample + (1 - RATE_ALPHA) * old
    row.window_started_at, row.window_images = now, 0


def outlook(job: Job, row: ModelQueue | None) -> Outlook:
    """The job's images still to do, and those of its model to be done before them.

    Interactive images go first, so a batch job also waits for those queued now; an
    interactive job waits only for interactive images admitted before it (plus the chunks in
    progress, which no counter sees: up to one chunk per worker).
    """
    left = job.pending
    if row is None or job.queue_end is None:
        return Outlook(0, left, None if row is None else row.rate_per_s)
    _, done = _counters(job.lane)
    ahead = max(0, int(job.queue_end) - int(getattr(row, done)) - left)
    if job.lane == Lane.BATCH:
        ahead += queued(row, Lane.INTERACTIVE)
    return Outlook(ahead, left, row.rate_per_s)


def forecast(session: Session, model_name: str, lane: Lane, count: int) -> Outlook:
    """The outlook of ``count`` images about to be submitted (before any row exists)."""
    row = session.get(ModelQueue, model_name)
    if row is None:
        return Outlook(0, count, None)
    ahead = queued(row, lane) + (queued(row, Lane.INTERACTIVE) if lane == Lane.BATCH else 0)
    return Outlook(ahead, count, row.rate_per_s)


def seconds_until_meetable(outlook: Outlook, within_s: float) -> int:
    """How long until the images ahead have shrunk enough to finish within ``within_s``."""
    eta = outlook.eta_s or 0.0
    return max(1, math.ceil(eta - max(0.0, within_s)))


def seconds_until_room(error: QueueFull) -> int:
    """How long until the images asked for fit under the cap, at the measured rate."""
    excess = error.queued + error.requested - error.cap
    if not error.rate_per_s or excess <= 0:
        return 1
    return max(1, math.ceil(excess / error.rate_per_s))


def row_for(session: Session, model_name: str) -> ModelQueue | None:
    """The model's row as the database has it now (admit updates it behind the ORM's back)."""
    query = select(ModelQueue).where(ModelQueue.model_name == model_name)
    return session.scalars(query.execution_options(populate_existing=True)).first()
