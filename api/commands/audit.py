"""`medflow audit`: verify the chain (against saved anchors) and anchor its head."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from api.commands.keys import cli_actor, cli_session
from config.settings import Settings
from db.anchor_keys import AnchorKeyError, generate_key_file, load_signing_key
from db.anchor_policy import verify_deployment
from db.anchors import sign_head, write_anchor
from db.audit import ChainReport, append_event, verify_chain


@click.group()
def audit() -> None:
    """Verify and anchor the tamper-evident audit chain."""


@audit.command("verify")
@click.option(
    "--anchors",
    "source",
    help="Anchors to check: a directory, file or s3:// prefix (default: MEDFLOW_AUDIT_ANCHORS).",
)
def verify(source: str | None) -> None:
    """Walk the whole chain; exit 1 naming the first bad seq and why. Read-only."""
    settings = Settings.from_env()
    with cli_session(settings) as session:
        report = verify_deployment(session, settings, source)
    click.echo(json.dumps(report.to_dict()))
    _fail_if_bad(report)


@audit.command("anchor")
@click.option(
    "--out",
    help="Where to keep the anchor: a directory, file or s3://bucket/key "
    "(default: MEDFLOW_AUDIT_ANCHORS).",
)
def anchor(out: str | None) -> None:
    """Verify the chain, then sign its head; the anchor is printed, and written to --out.

    Needs MEDFLOW_ANCHOR_SIGNING_KEY (the collector's beat anchors on its own; this is for an
    operator who holds the key)."""
    settings = Settings.from_env()
    out = out or settings.audit_anchors
    if not settings.anchor_signing_key:
        raise click.ClickException("anchoring needs MEDFLOW_ANCHOR_SIGNING_KEY (a PEM file)")
    try:
        key = load_signing_key(settings.anchor_signing_key)
    except AnchorKeyError as exc:
        raise click.ClickException(str(exc)) from None
    with cli_session(settings) as session:
        report = verify_chain(session)
    _fail_if_bad(report)  # anchoring a tampered head would vouch for it
    signed = sign_head(report.head_seq, report.head_hash, datetime.now(UTC), key)
    where = write_anchor(signed, out, endpoint_url=settings.s3_endpoint_url) if out else None
    with cli_session(settings) as session:
        payload = {"seq": signed.seq, "hash": signed.hash, "at": signed.at}
        append_event(
            session,
            actor=cli_actor(),
            action="audit.anchored",
            object_type="audit_chain",
            object_id=str(signed.seq),
            payload=payload,
        )
    click.echo(signed.to_json())
    if where:
        click.echo(f"anchor written to {where}", err=True)


@audit.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
def keygen(path: str) -> None:
    """Write a new Ed25519 anchor signing key to PATH (mode 0600) and print its public key.

    Give PATH to the anchoring process only (MEDFLOW_ANCHOR_SIGNING_KEY); the printed public
    key is MEDFLOW_ANCHOR_VERIFY_KEY, for every process that verifies."""
    try:
        click.echo(generate_key_file(path))
    except FileExistsError:
        raise click.ClickException(f"{path} exists: a signing key is never overwritten") from None


def _fail_if_bad(report: ChainReport) -> None:
    if not report.ok:
        where = f" at seq {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        detail = f" ({report.detail})" if report.detail else ""
        click.echo(f"audit chain BROKEN{where}: {report.reason}{detail}", err=True)
        raise SystemExit(1)
