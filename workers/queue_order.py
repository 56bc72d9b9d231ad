"""The order in which a worker asks Redis for its queues: every ``*.priority`` queue first.

kombu's Redis transport consumes several queues with one BRPOP, which takes from the first
non-empty key it is given. By default it rotates the list after every message (round robin),
so a worker alternates between its queues: an urgent image would wait behind one batch chunk
per image ahead of it. kombu's "priority" order keeps the list as the queues were added, which
an operator's cancel/add consumer (Flower) reorders; this class sorts the priority queues
first whatever the order they were added in, and never rotates.
"""

from __future__ import annotations

from kombu.utils.scheduling import round_robin_cycle

from workers.queues import PRIORITY_SUFFIX

# What broker_transport_options["queue_order_strategy"] names (kombu imports it by this path).
STRATEGY = "workers.queue_order:PriorityQueuesFirst"


class PriorityQueuesFirst(round_robin_cycle):
    def consume(self, n: int) -> list[str]:
        # sorted() is stable: each group keeps the order in which its queues were added.
        return sorted(self.items[:n], key=lambda queue: not queue.endswith(PRIORITY_SUFFIX))

    def rotate(self, last_used: str) -> None:
        """Never: the order is fixed."""
