"""`medflow models`: the models the service can run."""

from __future__ import annotations

import click

from api.client import MedflowClient
from api.commands.remote import client_options


@click.command()
@client_options
def models(client: MedflowClient) -> None:
    """List registered model versions (the active one is starred; a model no live worker
    serves is marked: its jobs wait in the queue until one starts)."""
    for model in client.models():
        star = "*" if model.get("active") else " "
        labels = model.get("card", {}).get("output", {}).get("labels", [])
        line = f"{star} {model.get('name')}:{model.get('version')}\t{len(labels)} labels"
        if model.get("served") is False:
            line += "\tNO WORKER serves this model"
        elif model.get("workers"):
            line += f"\t{model['workers']} workers"
        click.echo(line)
