"""`medflow infer FILE --model NAME`: one image through the interactive lane; prints its result."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import click

from api.client import MedflowClient
from api.commands.remote import client_options


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="NAME or NAME:VERSION")
@click.option(
    "--timeout",
    "timeout_s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, 60, min_open=True),
    help="Seconds the server waits for the result before answering with the job to poll.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the response body as JSON.")
@client_options
def infer(client: MedflowClient, path: Path, model: str, timeout_s: float, as_json: bool) -> None:
    """Run one image now, ahead of queued batch work, and print its result."""
    started = time.monotonic()
    # One key per invocation: a retry by the client inside this run cannot make a second job.
    status, body = client.infer(path, model, timeout_s, idempotency_key=uuid.uuid4().hex)
    elapsed_ms = (time.monotonic() - started) * 1000
    if as_json:
        click.echo(json.dumps(body, indent=2))
    elif status == 202:
        click.echo(f"job {body.get('id')}: not done within {timeout_s:g} s; poll {body['url']}")
    else:
        click.echo(summary(body))
    click.echo(f"{elapsed_ms:.0f} ms", err=True)
    if status == 202:
        raise SystemExit(3)  # distinct from failure: the result will come
    if body.get("status") != "succeeded":
        raise SystemExit(1)


def summary(result: dict[str, object]) -> str:
    if result.get("status") != "succeeded":
        return f"{result.get('status')}  {result.get('error_code')}: {result.get('error_message')}"
    scores = result.get("scores") or {}
    assert isinstance(scores, dict)
    shown = "  ".join(f"{label} {float(score):.4f}" for label, score in scores.items())
    positive = ", ".join(result.get("positive") or []) or "none"  # type: ignore[arg-type]
    return f"succeeded  {shown}  positive: {positive}  (job {result.get('job_id')})"
