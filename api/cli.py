"""The `medflow` command: one click group; each subcommand lives in `api/commands/<name>.py`."""

from __future__ import annotations

import importlib

import click

# Subcommand modules, each exposing a click command (or group) named like the module.
COMMANDS = ("predict", "up", "submit", "status", "results", "models", "keys", "audit", "db")


@click.group()
def medflow() -> None:
    """MedFlow: batch inference of ONNX models over medical images."""


def _register() -> None:
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"api.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"api.commands.{name}":
                raise
            continue  # not built yet
        medflow.add_command(getattr(module, name.replace("-", "_")))


def main() -> None:
    _register()
    medflow()
