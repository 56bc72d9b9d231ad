"""Stored values -> display intensities on [0, 1]: modality rescale, VOI window, inversion.

These run *after* area reduction (see :mod:`pipeline.image`), on about 50,000 float32 values,
in place. Averaging and the (piecewise) linear window commute except where a pixel's footprint
straddles a window edge, which the preprocessing tolerance tests bound.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ErrorCode, ImageError
from pipeline.image import IntensityTransform, Window


def to_display(
    values: np.ndarray, transform: IntensityTransform, percentiles: tuple[float, float]
) -> np.ndarray:
    """Apply the intensity transform in place (DICOM PS3.3 C.11 order).

    Parameters
    ----------
    values : numpy.ndarray
        float32, any shape: stored sample values (already area-reduced). Overwritten.
    transform : IntensityTransform
        Rescale, then the first of: ``window``; ``value_range`` (PNG/JPEG); a percentile window
        over ``values``; then ``1 - x`` when ``invert`` (MONOCHROME1).
    percentiles : tuple of float
        Low and high percentiles (0-100) for the window used when the file has neither a window
        nor a value range. Computed on the reduced image: an approximation of the same
        percentiles at full resolution, where noise widens the tails slightly.

    Returns
    -------
    numpy.ndarray
        ``values``, now float32 display intensities on [0, 1] (0 is black).
    """
    if transform.slope != 1.0 or transform.intercept != 0.0:
        # Modality LUT, PS3.3 C.11.1: output units = slope * stored + intercept.
        values *= np.float32(transform.slope)
        values += np.float32(transform.intercept)
    if transform.window is not None:
        apply_window(values, transform.window)
    elif transform.value_range is not None:
        _map_linear(values, *transform.value_range)
    else:
        low, high = (float(v) for v in np.percentile(values, percentiles))
        # Float32 area weights leave a flat image a few ULPs from flat: treat that as flat.
        flat = high - low <= 1e-5 * max(abs(low), abs(high))
        _map_linear(values, low, low if flat else high)
    if transform.invert:
        np.subtract(np.float32(1.0), values, out=values)
    return values


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """VOI window to [0, 1] in place (PS3.3 C.11.2.1.2.1 and C.11.2.1.3), with ymin=0, ymax=1.

    Parameters
    ----------
    values : numpy.ndarray
        float32 modality values (e.g. Hounsfield units or detector units). Overwritten.
    window : Window
        ``center`` and ``width`` in modality units; ``function`` "LINEAR", "LINEAR_EXACT"
        or "SIGMOID" (PS3.3 C.11.2.1.3).

    Raises
    ------
    ImageError
        ``DICOM_INVALID`` for an unknown function or a width the standard forbids
        (LINEAR needs width >= 1, the others width > 0).
    """
    center, width = float(window.center), float(window.width)
    if window.function == "LINEAR":
        _require(width >= 1.0, "LINEAR window width must be >= 1")
        if width == 1.0:
            # C.11.2.1.2.1 with w = 1 is a step at c - 0.5 (its ramp has zero length).
            np.greater(values, center - 0.5, out=values, casting="unsafe")
            return values
        # y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped to [0, 1].
        return _map_linear(values, center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2)
    _require(width > 0.0, f"{window.function} window width must be > 0")
    if window.function == "LINEAR_EXACT":
        # C.11.2.1.3.2: y = (x - c) / w + 0.5, clipped to [0, 1].
        return _map_linear(values, center - width / 2, center + width / 2)
    if window.function == "SIGMOID":
        # C.11.2.1.3.1: y = 1 / (1 + exp(-4 (x - c) / w)) = (1 + tanh(2 (x - c) / w)) / 2,
        # the tanh form cannot overflow in float32.
        values -= np.float32(center)
        values *= np.float32(2.0 / width)
        np.tanh(values, out=values)
        values += np.float32(1.0)
        values *= np.float32(0.5)
        return values
    raise ImageError(ErrorCode.DICOM_INVALID, "unsupported VOI LUT function")


def _map_linear(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(x - low) / (high - low)`` clipped to [0, 1]; all 0 when ``high <= low`` (flat image)."""
    if high <= low:
        values.fill(0.0)
        return values
    values -= np.float32(low)
    values *= np.float32(1.0 / (high - low))
    return np.clip(values, 0.0, 1.0, out=values)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ImageError(ErrorCode.DICOM_INVALID, message)
