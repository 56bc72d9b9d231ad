"""The anchor key pair: Ed25519, so that whoever verifies needs only the public key.

The private key is a PEM file (``MEDFLOW_ANCHOR_SIGNING_KEY``, a path) that only the anchoring
process (the collector's beat, or an operator's ``medflow audit anchor``) can read; the public
key (``MEDFLOW_ANCHOR_VERIFY_KEY``) is 32 bytes in base64, harmless to hand to every process.
Before issue 9 anchors were HMACs under ``MEDFLOW_SECRET_KEY``, which every worker pod held.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class AnchorKeyError(ValueError):
    """An anchor key that cannot be read; the message names the setting, never the key."""


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AnchorKeyError(f"MEDFLOW_ANCHOR_SIGNING_KEY: cannot read a PEM key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorKeyError("MEDFLOW_ANCHOR_SIGNING_KEY must be an Ed25519 private key")
    return key


def load_verify_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise AnchorKeyError(
            f"MEDFLOW_ANCHOR_VERIFY_KEY: not a base64 Ed25519 key ({exc})"
        ) from None


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def generate_key_file(path: str | Path) -> str:
    """Write a new private key (mode 0600, never over an existing file); returns the public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return public_text(key.public_key())
