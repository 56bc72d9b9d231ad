"""Anchors: signed copies of the chain's head, kept outside the database.

A hash chain alone proves nothing against someone who can rewrite every row and recompute every
hash. An anchor ``{seq, hash, at}`` signed with Ed25519 by the anchoring process and stored
elsewhere (a write-once bucket with S3 Object Lock is best) pins the chain: a rewrite by
someone without the private key no longer matches the anchors, a truncation falls short of
them. Verifying needs only the public key (db/anchor_keys.py).

The signed bytes start with a purpose string, so that a signature made with the same key for
anything else can never stand in for an anchor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from db.audit import canonical_json, format_timestamp
from storage.s3 import s3_client

_PURPOSE = b"medflow.audit.anchor.v2\n"


class AnchorUnreadable(ValueError):
    """A stored anchor that is not an anchor (junk, truncated, another format): a clear error,
    never a pass and never a crash. The message names the file, not its contents."""


def _signed_bytes(seq: int, chain_hash: str, at: str) -> bytes:
    return _PURPOSE + canonical_json({"seq": seq, "hash": chain_hash, "at": at})


@dataclass(frozen=True)
class Anchor:
    seq: int  # 0 anchors the empty chain (hash: the genesis value)
    hash: str
    at: str  # when the head was signed, UTC, db.audit.TIMESTAMP_FORMAT
    signature: str  # hex Ed25519 signature

    def signature_valid(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(bytes.fromhex(self.signature), _signed_bytes(self.seq, self.hash, self.at))
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        if not isinstance(data, dict):
            raise ValueError("an anchor is a JSON object")
        seq, chain_hash, at, sig = (data.get(k) for k in ("seq", "hash", "at", "signature"))
        if not (
            isinstance(seq, int)
            and isinstance(chain_hash, str)
            and isinstance(at, str)
            and isinstance(sig, str)
        ):
            raise ValueError("an anchor needs int seq and str hash, at, signature")
        return cls(seq, chain_hash, at, sig)


def sign_head(seq: int, hash: str, at: datetime, key: Ed25519PrivateKey) -> Anchor:
    stamp = format_timestamp(at)
    return Anchor(seq, hash, stamp, key.sign(_signed_bytes(seq, hash, stamp)).hex())


def write_anchor(anchor: Anchor, dest: str | Path, *, endpoint_url: str | None = None) -> str:
    """Store one anchor; returns where it went.

    ``dest`` is a directory (one new file per anchor, never overwritten), a file (one JSON line
    appended), ``s3://bucket/prefix/`` (one new object per anchor) or ``s3://bucket/key``.
    """
    text = anchor.to_json() + "\n"
    name = f"anchor-{anchor.seq:012d}-{anchor.at.replace(':', '')}.json"
    if str(dest).startswith("s3://"):
        bucket, key = _split_s3(str(dest))
        key = key + name if key.endswith("/") or not key else key
        s3_client(endpoint_url).put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))
        return f"s3://{bucket}/{key}"
    path = Path(dest)
    if path.is_dir() or str(dest).endswith("/"):
        path.mkdir(parents=True, exist_ok=True)
        with open(path / name, "x", encoding="utf-8") as out:  # "x": an anchor is never replaced
            out.write(text)
        return str(path / name)
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)
    return str(path)


def read_anchors(src: str | Path, *, endpoint_url: str | None = None) -> list[Anchor]:
    """Every anchor in a directory (``*.json``/``*.jsonl``), a JSON-lines file or an S3 prefix."""
    if str(src).startswith("s3://"):
        bucket, prefix = _split_s3(str(src))
        client = s3_client(endpoint_url)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        bodies = [(k, client.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
        return [a for key, body in bodies for a in _parse(body, f"s3://{bucket}/{key}")]
    path = Path(src)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        return [a for f in files for a in _parse(f.read_bytes(), str(f))]
    return _parse(path.read_bytes(), str(path))


def saved_anchors(settings: Any) -> list[Anchor]:
    """The anchors kept at ``settings.audit_anchors``; none yet (or none configured) is empty."""
    source = settings.audit_anchors
    if not source or (not source.startswith("s3://") and not Path(source).exists()):
        return []
    return read_anchors(source, endpoint_url=settings.s3_endpoint_url)


def _parse(body: bytes, where: str) -> list[Anchor]:
    try:
        lines = body.decode("utf-8").splitlines()
        return [Anchor.from_dict(json.loads(line)) for line in lines if line.strip()]
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
        raise AnchorUnreadable(f"unreadable anchor in {where}: {type(exc).__name__}") from None


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/key URL: {url}")
    return bucket, key
