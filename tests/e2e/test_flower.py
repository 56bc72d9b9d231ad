"""Flower as `medflow up` runs it: every queue on the broker page at once, no write actions."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest

from tests.e2e.harness import E2EStack
from workers.queues import RESULTS_QUEUE


def test_the_broker_page_lists_every_queue_before_any_worker_page_is_opened(
    stack: E2EStack,
) -> None:
    auth = (stack.stack.flower_user, stack.stack.flower_password)
    page = stack.get_text(f"{stack.stack.flower_url}/broker", auth)
    assert stack.queue in page and RESULTS_QUEUE in page


@pytest.mark.parametrize(
    "path",
    [
        "/api/task/async-apply/medflow.collect",
        "/api/task/revoke/0123456789abcdef",
        "/api/worker/shutdown/collector@nowhere",
        "/api/worker/pool/grow/collector@nowhere",
    ],
)
def test_write_actions_are_off(stack: E2EStack, path: str) -> None:
    auth = (stack.stack.flower_user, stack.stack.flower_password)
    request = urllib.request.Request(f"{stack.stack.flower_url}{path}", data=b"{}", method="POST")
    pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {pair}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 404
    # The same credentials do reach a read route.
    assert stack.get_text(f"{stack.stack.flower_url}/api/queues/length", auth).startswith("{")
