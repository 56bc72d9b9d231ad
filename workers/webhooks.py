"""Webhooks: the outbox subscriber that POSTs ``job.finished`` to each configured endpoint.

One subscriber per endpoint and event (``webhook:<endpoint>:<event>``), so each endpoint has its
own attempts and backoff in the outbox. The body is built from a fixed list of the payload's
fields (ids, counts, status, model, links), so nothing added to the outbox payload later reaches
a receiver by accident. Signed as ``messages.webhook_signature`` says; docs/webhooks.md is the
receiver's side. The endpoints were checked against the allow-list when the settings loaded, and
``workers.webhook_post`` follows no redirect, so nothing else is ever contacted.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from config.webhooks import Endpoint, configured_endpoints
from messages.webhook_signature import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from workers import metrics
from workers.outbox_handlers import Subscription, add_source
from workers.webhook_post import WebhookDeliveryError, post

if TYPE_CHECKING:
    from db.outbox import OutboxMessage

# What a receiver gets of a job.finished payload (owner_key_id stays inside MedFlow).
JOB_FIELDS = (
    "job_id",
    "status",
    "model",
    "version",
    "model_ref",
    "total",
    "succeeded",
    "failed",
    "cancelled",
    "finished_at",
)


def subscriptions(settings: Settings) -> list[Subscription]:
    endpoints = configured_endpoints(settings.webhooks, settings.webhook_allow)
    return [
        Subscription(event, f"webhook:{endpoint.name}:{event}", functools.partial(send, endpoint))
        for endpoint in endpoints
        for event in endpoint.events
    ]


def send(endpoint: Endpoint, message: OutboxMessage, settings: Settings) -> None:
    """POST ``message`` to ``endpoint``; raises (the dispatcher retries) unless it answers 2xx."""
    started = time.monotonic()
    try:
        body = encode(body_of(message, settings.public_url))
        status = post(endpoint.url, body, headers_for(endpoint, message, body))
        if not 200 <= status < 300:
            redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
            raise WebhookDeliveryError(f"endpoint {endpoint.name} answered HTTP {status}{redirect}")
    except Exception:
        metrics.WEBHOOK_DELIVERIES.labels(endpoint.name, "failed").inc()
        raise
    finally:
        metrics.WEBHOOK_SECONDS.labels(endpoint.name).observe(time.monotonic() - started)
    metrics.WEBHOOK_DELIVERIES.labels(endpoint.name, "sent").inc()


def body_of(message: OutboxMessage, public_url: str | None) -> dict[str, Any]:
    payload = message.payload
    data = {field: payload.get(field) for field in JOB_FIELDS}
    job = f"{(public_url or '').rstrip('/')}/v1/jobs/{payload['job_id']}"
    data["links"] = {"job": job, "results": f"{job}/results"}
    return {
        "id": payload["event_id"],
        "type": message.kind,
        "created_at": payload.get("finished_at"),
        "data": data,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def headers_for(endpoint: Endpoint, message: OutboxMessage, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "MedFlow-Webhooks/1",
        SIGNATURE_HEADER: sign(endpoint.secret(), body),
        EVENT_ID_HEADER: str(message.payload["event_id"]),
        EVENT_TYPE_HEADER: message.kind,
    }


add_source("webhooks", subscriptions)
