"""The order in which a worker asks Redis for its queues (kombu's queue cycle)."""

from __future__ import annotations

from kombu.utils.scheduling import cycle_by_name

from config.settings import Settings
from workers.app import make_celery
from workers.queue_order import STRATEGY
from workers.queues import infer_queue, priority_queue


def test_priority_queues_come_first_whatever_the_order_they_were_added_in() -> None:
    cycle = cycle_by_name(STRATEGY)()
    # add_consumer (Flower, an operator) appends: the batch queue may come first in the list.
    cycle.update([infer_queue("a"), infer_queue("b"), priority_queue("b"), priority_queue("a")])
    expected = [priority_queue("b"), priority_queue("a"), infer_queue("a"), infer_queue("b")]
    assert cycle.consume(4) == expected
    cycle.rotate(priority_queue("b"))  # round robin would move it to the end
    assert cycle.consume(4) == expected


def test_the_celery_app_uses_it() -> None:
    options = make_celery(Settings(env="test")).conf.broker_transport_options
    assert options["queue_order_strategy"] == STRATEGY
