"""`medflow cancel JOB_ID`: stop a job; images already done keep their results."""

from __future__ import annotations

import click

from api.client import MedflowClient
from api.commands.remote import client_options, describe


@click.command()
@click.argument("job_id")
@client_options
def cancel(client: MedflowClient, job_id: str) -> None:
    """Cancel a job: its pending images are cancelled, finished ones keep their results."""
    click.echo(describe(client.cancel(job_id)))
