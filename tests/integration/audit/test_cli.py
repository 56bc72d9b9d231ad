"""`medflow keys` and `medflow audit`, run through click against a migrated database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from api.commands.audit import audit
from api.commands.keys import keys
from config.settings import Settings
from db.anchor_keys import generate_key_file
from tests.integration.audit.helpers import POSTGRES_ONLY, SECRET, tamper

ANCHOR_ENV: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def anchor_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The anchor key pair the commands are given, as an operator's environment would."""
    path = tmp_path_factory.mktemp("anchor-key") / "signing.pem"
    ANCHOR_ENV["MEDFLOW_ANCHOR_VERIFY_KEY"] = generate_key_file(path)
    ANCHOR_ENV["MEDFLOW_ANCHOR_SIGNING_KEY"] = str(path)


def run(settings: Settings, group: object, *args: str) -> Result:
    env = {
        "MEDFLOW_ENV": "test",
        "MEDFLOW_DATABASE_URL": settings.database_url,
        "MEDFLOW_SECRET_KEY": SECRET,
        **ANCHOR_ENV,
    }
    return CliRunner().invoke(group, list(args), env=env)  # type: ignore[arg-type]


def test_keys_create_list_revoke(migrated_settings: Settings) -> None:
    created = run(migrated_settings, keys, "create", "pacs-gateway", "--role", "submitter")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("mf_") and "shown only once" in created.stderr
    listed = run(migrated_settings, keys, "list")
    assert "pacs-gateway" in listed.stdout and "active" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout
    key_id = listed.stdout.split("\t", 1)[0]
    assert run(migrated_settings, keys, "revoke", key_id).exit_code == 0
    assert "revoked" in run(migrated_settings, keys, "list").stdout
    missing = run(migrated_settings, keys, "revoke", "999")
    assert missing.exit_code != 0 and "no key with id 999" in missing.output


def test_audit_anchor_then_verify(migrated_settings: Settings, tmp_path: Path) -> None:
    run(migrated_settings, keys, "create", "admin", "--role", "admin")
    out = tmp_path / "anchors"
    anchored = run(migrated_settings, audit, "anchor", "--out", f"{out}/")
    assert anchored.exit_code == 0, anchored.output
    assert json.loads(anchored.stdout.strip())["seq"] == 1
    verified = run(migrated_settings, audit, "verify", "--anchors", str(out))
    assert verified.exit_code == 0, verified.output
    # key.created, then the anchoring itself is recorded
    assert json.loads(verified.stdout) | {"head_hash": None} == {
        "ok": True,
        "events": 2,
        "head_seq": 2,
        "head_hash": None,
        "first_bad_seq": None,
        "reason": None,
        "detail": None,
    }


@POSTGRES_ONLY
def test_verify_exits_1_naming_the_first_bad_seq(
    migrated_settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        run(migrated_settings, keys, "create", name, "--role", "auditor")
    out = tmp_path / "anchors.jsonl"
    assert run(migrated_settings, audit, "anchor", "--out", str(out)).exit_code == 0
    with tamper(engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 3"))
    bad = run(migrated_settings, audit, "verify", "--anchors", str(out))
    assert bad.exit_code == 1
    assert "BROKEN at seq 3: anchor_beyond_head" in bad.stderr
    with tamper(engine) as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'service:someone-else' WHERE seq = 1"))
    refused = run(migrated_settings, audit, "anchor", "--out", str(out))  # never vouch for it
    assert refused.exit_code == 1 and "BROKEN at seq 1: hash_mismatch" in refused.stderr
    assert len(out.read_text().splitlines()) == 1
