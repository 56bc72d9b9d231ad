"""Encoded test images (PNG bytes) made from the synthetic radiographs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.unit.pipeline.synthetic import as_dtype, radiograph


def png_bytes(rows: int = 200, columns: int = 160, *, seed: int = 0, bits: int = 8) -> bytes:
    high = 255 if bits == 8 else 65535
    pixels = as_dtype(
        radiograph(rows, columns, 0, high, seed=seed), np.uint8 if bits == 8 else np.uint16
    )
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


BROKEN = {
    "UNKNOWN_FORMAT": b"this is not an image at all" * 10,
    "EMPTY_FILE": b"",
}
