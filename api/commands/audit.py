"""`medflow audit`: verify the chain (against saved anchors) and anchor its head."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from api.commands.keys import cli_actor, cli_session
from config.settings import Settings
from db.anchors import read_anchors, saved_anchors, sign_head, write_anchor
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
    if source:
        anchors = read_anchors(source, endpoint_url=settings.s3_endpoint_url)
    else:
        anchors = saved_anchors(settings)
    with cli_session(settings) as session:
        report = verify_chain(session, anchors, key=settings.secret_key)
    click.echo(json.dumps(report.to_dict()))
    _fail_if_bad(report)


@audit.command("anchor")
@click.option(
    "--out",
    help="Where to keep the anchor: a directory, file or s3://bucket/key "
    "(default: MEDFLOW_AUDIT_ANCHORS).",
)
def anchor(out: str | None) -> None:
    """Verify the chain, then sign its head; the anchor is printed, and written to --out."""
    settings = Settings.from_env()
    out = out or settings.audit_anchors
    with cli_session(settings) as session:
        report = verify_chain(session)
    _fail_if_bad(report)  # anchoring a tampered head would vouch for it
    signed = sign_head(report.head_seq, report.head_hash, datetime.now(UTC), settings.secret_key)
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


def _fail_if_bad(report: ChainReport) -> None:
    if not report.ok:
        click.echo(f"audit chain BROKEN at seq {report.first_bad_seq}: {report.reason}", err=True)
        raise SystemExit(1)
