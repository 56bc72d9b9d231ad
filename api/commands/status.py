"""`medflow status [JOB_ID]`: one job's progress, or the most recent jobs."""

from __future__ import annotations

import json

import click

from api.client import MedflowClient
from api.commands.remote import client_options, describe


@click.command()
@click.argument("job_id", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON body.")
@client_options
def status(client: MedflowClient, job_id: str | None, limit: int, as_json: bool) -> None:
    """Show a job (or, without JOB_ID, the latest jobs this key may see)."""
    body = client.get_job(job_id) if job_id else client.list_jobs(limit)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    for job in [body] if isinstance(body, dict) else body:
        click.echo(describe(job))
