"""Anchors: signed copies of the chain's head, kept outside the database.

A hash chain alone proves nothing against someone who can rewrite every row and recompute every
hash. An anchor ``{seq, hash, at}`` signed with HMAC-SHA256 under ``settings.secret_key`` and
stored elsewhere (a write-once bucket with S3 Object Lock is best) pins the chain: a rewrite by
someone without the key no longer matches the anchors, a truncation falls short of them.

The HMAC key is derived from the secret for this one purpose, so that a value computed with the
same secret for another use (a pseudonym) can never stand in for an anchor signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from db.audit import canonical_json, format_timestamp
from storage.s3 import s3_client

_PURPOSE = b"medflow.audit.anchor.v1"


def _anchor_key(secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def _mac(seq: int, chain_hash: str, at: str, secret: str) -> str:
    message = canonical_json({"seq": seq, "hash": chain_hash, "at": at})
    return hmac.new(_anchor_key(secret), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchor:
    seq: int  # 0 anchors the empty chain (hash: the genesis value)
    hash: str
    at: str  # when the head was signed, UTC, db.audit.TIMESTAMP_FORMAT
    signature: str  # hex HMAC-SHA256

    def signature_valid(self, secret: str) -> bool:
        expected = _mac(self.seq, self.hash, self.at, secret)
        return hmac.compare_digest(expected, self.signature)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        seq, chain_hash, at, sig = (data.get(k) for k in ("seq", "hash", "at", "signature"))
        if not (
            isinstance(seq, int)
            and isinstance(chain_hash, str)
            and isinstance(at, str)
            and isinstance(sig, str)
        ):
            raise ValueError("an anchor needs int seq and str hash, at, signature")
        return cls(seq, chain_hash, at, sig)


def sign_head(seq: int, hash: str, at: datetime, key: str) -> Anchor:
    stamp = format_timestamp(at)
    return Anchor(seq, hash, stamp, _mac(seq, hash, stamp, key))


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
        bodies = [client.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in keys]
        return [a for body in bodies for a in _parse(body)]
    path = Path(src)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        return [a for f in files for a in _parse(f.read_text(encoding="utf-8"))]
    return _parse(path.read_text(encoding="utf-8"))


def saved_anchors(settings: Any) -> list[Anchor]:
    """The anchors kept at ``settings.audit_anchors``; none yet (or none configured) is empty."""
    source = settings.audit_anchors
    if not source or (not source.startswith("s3://") and not Path(source).exists()):
        return []
    return read_anchors(source, endpoint_url=settings.s3_endpoint_url)


def _parse(body: str) -> list[Anchor]:
    return [Anchor.from_dict(json.loads(line)) for line in body.splitlines() if line.strip()]


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/key URL: {url}")
    return bucket, key
