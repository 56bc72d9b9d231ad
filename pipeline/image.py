"""What decoding produces: stored sample values plus the rules that turn them into intensities.

Decoding deliberately stops *before* the intensity transforms. Rescale, windowing and
MONOCHROME1 inversion are cheap on a 224x224 image and expensive on a 2048x2048 one, and they
commute (closely enough, see the preprocessing tolerance tests) with an area reduction. So
:func:`pipeline.decode.decode_image` returns the stored values and an
:class:`IntensityTransform`, and :mod:`pipeline.preprocess` reduces first, then transforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class ImageFormat(StrEnum):
    DICOM = "dicom"
    PNG = "png"
    JPEG = "jpeg"


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (DICOM PS3.3 C.11.2.1.2: centre and width)."""

    center: float
    width: float
    # "LINEAR" (the default), "LINEAR_EXACT" or "SIGMOID" (VOI LUT Function, 0028,1056)
    function: str = "LINEAR"


@dataclass(frozen=True)
class IntensityTransform:
    """Stored value -> display intensity in [0, 1], applied by preprocessing after reduction.

    Order (PS3.3 C.11): modality LUT (``slope * stored + intercept``), then the VOI window (or a
    percentile window over the image when the file has none), then inversion for MONOCHROME1.
    A table Modality LUT or VOI LUT is applied at decode time instead (it is not linear), and
    the decoder then sets ``slope=1, intercept=0`` and a window covering the table's output.
    """

    slope: float = 1.0
    intercept: float = 0.0
    # None: choose a robust percentile window from the pixels (see the model card's percentiles).
    window: Window | None = None
    invert: bool = False
    # For PNG/JPEG: the full range of the sample type, e.g. (0, 255) or (0, 65535); a
    # percentile window is not used for these unless `window` and `value_range` are both None.
    value_range: tuple[float, float] | None = None


@dataclass
class DecodedImage:
    """One decoded 2D image.

    Attributes
    ----------
    pixels : numpy.ndarray
        Stored values, shape ``(rows, columns)`` for greyscale or ``(rows, columns, 3)`` for
        RGB; dtype one of uint8, uint16, int16, float32, float64 (signed DICOM data already
        sign-extended from BitsStored). For JPEG decoded with ``Image.draft`` the array can be
        smaller than ``width`` x ``height``.
    format : ImageFormat
    width, height : int
        The image's size as stored in the file (columns, rows), not the possibly drafted array.
    intensity : IntensityTransform
    facts : dict
        PHI-free facts for the result row and metrics: e.g. ``transfer_syntax``,
        ``photometric``, ``bits_stored``, ``modality``, ``mode``. Never names, ids or dates.
    identifiers : dict
        Raw DICOM identifiers (``patient_id``, ``study_uid``, ``sop_uid``) kept only so the
        worker can replace them with keyed pseudonyms; never logged, never stored as is.
    """

    pixels: np.ndarray
    format: ImageFormat
    width: int
    height: int
    intensity: IntensityTransform
    facts: dict[str, str | int | float] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict, repr=False)
