"""`medflow up`: the whole stack on this machine until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from api.stack import Stack, StackError
from config.settings import Settings


@click.command()
@click.option("--models", "model_list", help="Comma-separated (default: $MEDFLOW_MODELS).")
@click.option("--port", default=8000, show_default=True, type=int, help="API port.")
@click.option("--flower-port", default=5555, show_default=True, type=int)
@click.option(
    "--workdir",
    default="var/stack",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Logs and state.",
)
@click.option(
    "--no-workers",
    is_flag=True,
    help="A hub: no inference workers here (they run on other hosts, see deploy/README.md).",
)
def up(
    model_list: str | None, port: int, flower_port: int, workdir: Path, no_workers: bool
) -> None:
    """Start Redis (if none answers), the API, one worker pool per model, the collector and
    Flower; stop them all on Ctrl-C."""
    settings = Settings.from_env()
    models = (
        [m.strip() for m in model_list.split(",") if m.strip()]
        if model_list
        else list(settings.models)
    )
    # SIGTERM (from a supervisor or `kill`) shuts down as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    click.echo(f"starting MedFlow ({', '.join(models)}); logs in {workdir}/logs", err=True)
    try:
        with Stack(
            settings,
            models,
            api_port=port,
            flower_port=flower_port,
            workdir=workdir,
            local_workers=not no_workers,
        ) as stack:
            _announce(stack)
            _wait(stack)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
    click.echo("stopped", err=True)


def _announce(stack: Stack) -> None:
    click.echo(f"API        {stack.api_url}")
    click.echo(
        f"Flower     {stack.flower_url}  (user {stack.flower_user}, password "
        f"{stack.flower_password})"
    )
    click.echo(f"API key    {stack.api_key}")
    click.echo(
        f"try:       MEDFLOW_URL={stack.api_url} MEDFLOW_API_KEY={stack.api_key} "
        "medflow submit IMAGES... --model NAME --wait"
    )
    click.echo("Ctrl-C stops everything.", err=True)


def _wait(stack: Stack) -> None:
    while True:
        time.sleep(1.0)
        for name in stack.restart_crashed_workers():
            click.echo(f"{name} exited unexpectedly; started again", err=True)
        dead = stack.dead()
        if dead:
            names = ", ".join(f"{c.name} (log {c.log})" for c in dead)
            click.echo(f"exited unexpectedly: {names}; stopping", err=True)
            sys.exit(1)


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
