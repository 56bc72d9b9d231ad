"""The `medflow` command: one click group; each subcommand lives in `api/commands/<name>.py`."""

from __future__ import annotations

import importlib

import click

# Subcommand modules, each exposing a click command (or group) named like the module.
COMMANDS = (
    "predict", "up", "submit", "infer", "status", "cancel", "results", "models", "keys", "audit",
    "db",
)  # fmt: skip


@click.group()
def medflow() -> None:
    """MedFlow: batch inference of ONNX models over medical images."""


def _register() -> None:
    # Every listed module exists: a missing one is a mistake to see, not a command to hide.
    for name in COMMANDS:
        module = importlib.import_module(f"api.commands.{name}")
        medflow.add_command(getattr(module, name.replace("-", "_")))


def main() -> None:
    from config.settings import SettingsError

    _register()
    try:
        medflow()
    except SettingsError as exc:  # one line, not a traceback (issue 9)
        click.echo(f"medflow: {exc}", err=True)
        raise SystemExit(2) from None
