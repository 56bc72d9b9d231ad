"""Anchors round-trip through a directory, a JSON-lines file and S3 (a moto server)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from db.anchors import Anchor, read_anchors, sign_head, write_anchor
from tests.integration.audit.helpers import SIGNING_KEY, VERIFY_KEY


def anchors() -> list[Anchor]:
    at = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    return [sign_head(seq, f"{seq:02x}" * 32, at, SIGNING_KEY) for seq in (3, 7)]


def test_signature_covers_every_field() -> None:
    good = anchors()[0]
    other = Ed25519PrivateKey.generate().public_key()
    assert good.signature_valid(VERIFY_KEY) and not good.signature_valid(other)
    for change in ({"seq": 4}, {"hash": "ff" * 32}, {"at": "2024-05-01T08:30:00.000001Z"}):
        forged = Anchor(**{**good.__dict__, **change})
        assert not forged.signature_valid(VERIFY_KEY)


def test_directory(tmp_path: Path) -> None:
    dest = tmp_path / "anchors"
    dest.mkdir()
    for anchor in anchors():
        write_anchor(anchor, dest)
    assert sorted(read_anchors(dest), key=lambda a: a.seq) == anchors()
    with pytest.raises(FileExistsError):  # an anchor file is never replaced
        write_anchor(anchors()[0], dest)


def test_json_lines_file(tmp_path: Path) -> None:
    dest = tmp_path / "anchors.jsonl"
    for anchor in anchors():
        write_anchor(anchor, dest)
    assert read_anchors(dest) == anchors()
    assert len(dest.read_text().splitlines()) == 2


def test_s3_prefix(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="audit-anchors")
    for anchor in anchors():
        where = write_anchor(anchor, "s3://audit-anchors/medflow/", endpoint_url=s3_endpoint)
        assert where.startswith("s3://audit-anchors/medflow/anchor-")
    found = read_anchors("s3://audit-anchors/medflow/", endpoint_url=s3_endpoint)
    assert sorted(found, key=lambda a: a.seq) == anchors()
