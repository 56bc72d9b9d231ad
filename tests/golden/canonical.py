"""One form for stored values, so a reference decoder's output and ours compare by checksum.

Integers become little endian int64 and floats float64, C-ordered, colour-by-pixel; the shape and
the kind are hashed with the values, so a transposed or re-typed image never matches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE_FILE = HERE / "reference.json"


def checksum(pixels: np.ndarray) -> str:
    """sha256 (hex) of ``pixels`` in canonical form: shape, kind, then the values."""
    kind = "f" if pixels.dtype.kind == "f" else "i"
    values = np.ascontiguousarray(pixels, dtype="<f8" if kind == "f" else "<i8")
    digest = hashlib.sha256(f"{pixels.shape}:{kind}:".encode())
    digest.update(values.tobytes())
    return digest.hexdigest()


def load_reference() -> dict[str, dict[str, object]]:
    """The recorded table: file name -> its row (see ``record_reference.py``)."""
    rows = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))["files"]
    return {row["file"]: row for row in rows}
