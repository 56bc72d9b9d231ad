"""What the HTTP commands share: --url/--key options, the client, API errors as CLI errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from api.client import MedflowClient, MedflowError, default_key, default_url

F = TypeVar("F", bound=Callable[..., Any])

FINAL_STATUSES = ("completed", "completed_with_errors", "failed", "cancelled")


def client_options(command: F) -> F:
    """Add --url and --key (defaults: MEDFLOW_URL, MEDFLOW_API_KEY); pass ``client`` instead."""

    @click.option("--url", default=default_url, show_default="$MEDFLOW_URL or local")
    @click.option("--key", default=default_key, help="API key (default: $MEDFLOW_API_KEY)")
    @functools.wraps(command)
    def wrapper(url: str, key: str, **kwargs: Any) -> Any:
        if not key:
            raise click.UsageError("no API key: pass --key or set MEDFLOW_API_KEY")
        try:
            return command(client=MedflowClient(url, key), **kwargs)
        except MedflowError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
        except OSError as exc:  # connection refused, DNS, timeouts
            raise click.ClickException(f"cannot reach {url}: {exc}") from None

    return wrapper  # type: ignore[return-value]


def counts(job: dict[str, Any]) -> dict[str, int]:
    """total/succeeded/failed/cancelled from a job body (its "counts" object)."""
    source: dict[str, Any] = job.get("counts") or {}
    names = ("total", "succeeded", "failed", "cancelled")
    return {name: int(source.get(name) or 0) for name in names}


def describe(job: dict[str, Any]) -> str:
    c = counts(job)
    created = str(job.get("created_at") or "?").replace("T", " ")[:19]
    line = (
        f"job {job.get('id')}  {job.get('status')}  created {created}  model {_model(job)}  "
        f"{c['succeeded']} ok, {c['failed']} failed, {c['cancelled']} cancelled of {c['total']}"
    )
    if c["failed"]:
        # Where a new user finds out why: each failed image's error code and message.
        line += f"\n  failures: medflow results {job.get('id')} --failed"
    return line


def _model(job: dict[str, Any]) -> str:
    model = job.get("model")
    if isinstance(model, dict):
        return str(model.get("ref") or f"{model.get('name')}:{model.get('version')}")
    return str(model)
