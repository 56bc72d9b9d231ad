"""`medflow results JOB_ID`: the results table as CSV, or as JSON lines."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from api.client import MedflowClient
from api.commands.remote import client_options


@click.command()
@click.argument("job_id")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout."
)
@click.option(
    "--failed", "failed_only", is_flag=True, help="Only the failed images: name, code, why."
)
@client_options
def results(
    client: MedflowClient, job_id: str, fmt: str, out: Path | None, failed_only: bool
) -> None:
    """Download a job's results (one row per image, in submission order)."""
    if failed_only:
        for item in client.iter_results(job_id):
            if item.get("status") == "failed":
                click.echo(
                    f"{item.get('ref')}\t{item.get('error_code')}\t{item.get('error_message')}"
                )
        return
    with open(out, "wb") if out else contextlib.nullcontext(sys.stdout.buffer) as handle:
        if fmt == "csv":
            client.results_csv(job_id, handle)
            return
        for item in client.iter_results(job_id):
            handle.write(json.dumps(item).encode() + b"\n")
