"""Limits on what one image may be; checked before the pixels are decoded."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    """Defaults are the product's documented limits; deployments override them in settings."""

    max_bytes: int = 50 * MIB
    min_side: int = 64
    max_side: int = 4096
    # A header's width x height is checked against this before decoding (decompression bombs).
    max_pixels: int = 4096 * 4096
