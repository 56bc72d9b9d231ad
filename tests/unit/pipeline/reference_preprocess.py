"""The plain, obviously correct preprocessing that :mod:`pipeline.preprocess` must match.

Everything in float64 at full resolution, in the order of DICOM PS3.3 C.11: modality rescale,
VOI window (each branch of the standard's piecewise definition written out), inversion; only
then a resize (Pillow, mode "F", box filter) and normalisation. Slow (about 75 ms for a
2048x2048 image) and written to be read, not to be fast.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.card import ModelCard
from pipeline.image import DecodedImage, IntensityTransform, Window


def reference_display(image: DecodedImage, card: ModelCard) -> np.ndarray:
    """Display intensities on [0, 1], float64, shape (height, width, channels) of the card."""
    pixels = image.pixels.astype(np.float64)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    display = intensities(pixels, image.intensity, card.preprocess.percentiles)
    resized = resize(display, card)
    return channels(resized, card.input.channels)


def reference_preprocess(image: DecodedImage, card: ModelCard) -> np.ndarray:
    """The model input without the batch axis: (C, H, W) for NCHW, (H, W, C) for NHWC."""
    display = reference_display(image, card)
    mean = np.asarray(card.preprocess.mean, np.float64)
    std = np.asarray(card.preprocess.std, np.float64)
    tensor = (display - mean) / std
    if card.input.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return tensor.astype(np.float32)


def intensities(
    x: np.ndarray, t: IntensityTransform, percentiles: tuple[float, float]
) -> np.ndarray:
    x = x * t.slope + t.intercept
    if t.window is not None:
        y = window(x, t.window)
    elif t.value_range is not None:
        y = linear(x, *t.value_range)
    else:
        low, high = np.percentile(x, percentiles)
        y = linear(x, low, high)
    return 1.0 - y if t.invert else y


def window(x: np.ndarray, w: Window) -> np.ndarray:
    c, width = w.center, w.width
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if w.function == "LINEAR":  # PS3.3 C.11.2.1.2.1
            below = x <= c - 0.5 - (width - 1) / 2
            above = x > c - 0.5 + (width - 1) / 2
            ramp = (x - (c - 0.5)) / (width - 1) + 0.5
            return np.where(below, 0.0, np.where(above, 1.0, ramp))
        if w.function == "LINEAR_EXACT":  # PS3.3 C.11.2.1.3.2
            below = x <= c - width / 2
            above = x > c + width / 2
            return np.where(below, 0.0, np.where(above, 1.0, (x - c) / width + 0.5))
        if w.function == "SIGMOID":  # PS3.3 C.11.2.1.3.1
            return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / width))
    raise ValueError(w.function)


def linear(x: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros_like(x)
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def resize(display: np.ndarray, card: ModelCard) -> np.ndarray:
    """Resize each channel with Pillow (mode "F", box filter); letterbox pads with 0 (black)."""
    rows, columns = display.shape[:2]
    height, width = card.input.height, card.input.width
    inner_h, inner_w = height, width
    if card.preprocess.resize == "letterbox":
        scale = min(height / rows, width / columns)
        inner_h = min(height, max(1, round(rows * scale)))
        inner_w = min(width, max(1, round(columns * scale)))
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    out = np.zeros((height, width, display.shape[2]), np.float64)
    for c in range(display.shape[2]):
        plane = Image.fromarray(display[:, :, c].astype(np.float32))
        assert plane.mode == "F"
        small = plane.resize((inner_w, inner_h), Image.Resampling.BOX)
        out[top : top + inner_h, left : left + inner_w, c] = np.asarray(small, np.float64)
    return out


def channels(display: np.ndarray, wanted: int) -> np.ndarray:
    have = display.shape[2]
    if have == wanted:
        return display
    if have == 1:
        return np.repeat(display, wanted, axis=2)
    luma = 0.299 * display[:, :, 0] + 0.587 * display[:, :, 1] + 0.114 * display[:, :, 2]
    return luma[:, :, None]
