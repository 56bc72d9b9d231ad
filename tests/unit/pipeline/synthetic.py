"""Smooth synthetic radiographs for preprocessing tests: gradients, soft blobs and noise."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipeline.image import DecodedImage, ImageFormat, IntensityTransform


@lru_cache(maxsize=32)
def radiograph(
    rows: int, columns: int, low: float, high: float, *, seed: int = 0, noise: float = 0.01
) -> np.ndarray:
    """float64 (rows, columns) on [low, high]: a tilted background, 12 soft blobs, white noise.

    ``noise`` is the noise standard deviation as a fraction of ``high - low``. Cached, hence
    read-only: copy before changing it.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns]
    y = y / rows
    x = x / columns
    field = 0.3 + 0.3 * x + 0.15 * y - 0.2 * (x - 0.5) ** 2
    for _ in range(12):
        cy, cx = rng.uniform(0.1, 0.9, 2)
        sigma = rng.uniform(0.04, 0.2)
        amplitude = rng.uniform(-0.25, 0.3)
        field += amplitude * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    field += rng.normal(0.0, noise, field.shape)
    field = (field - field.min()) / (field.max() - field.min())
    field = low + field * (high - low)
    field.flags.writeable = False
    return field


def decoded(
    pixels: np.ndarray, intensity: IntensityTransform, fmt: ImageFormat = ImageFormat.DICOM
) -> DecodedImage:
    return DecodedImage(
        pixels=pixels,
        format=fmt,
        width=pixels.shape[1],
        height=pixels.shape[0],
        intensity=intensity,
    )


def as_dtype(values: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
    """Round and store as ``dtype`` (values must already be in its range)."""
    return np.rint(values).astype(dtype)


def rgb(rows: int, columns: int, *, seed: int = 0) -> np.ndarray:
    """uint8 (rows, columns, 3): three differently tinted radiographs."""
    planes = [radiograph(rows, columns, 10, 245, seed=seed + c) for c in range(3)]
    return as_dtype(np.stack(planes, axis=-1), np.uint8)
