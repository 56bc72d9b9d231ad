"""DICOM intensity rules (PS3.3 C.11): Modality LUT, VOI LUT or window, MONOCHROME1 inversion.

Linear steps (rescale, window) are returned as an :class:`IntensityTransform` for preprocessing
to apply after reduction; LUT tables are not linear, so they are applied here, at full size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut

from pipeline.errors import ErrorCode, ImageError
from pipeline.image import IntensityTransform, Window

_TABLES = {"ModalityLUTSequence": "modality", "VOILUTSequence": "voi"}


def intensity_rules(
    stored: np.ndarray,
    header: Dataset,
    photometric: str,
    samples_per_pixel: int,
    bits_stored: int,
    *,
    little_endian: bool = True,
) -> tuple[np.ndarray, IntensityTransform, list[str]]:
    """Intensity rules of PS3.3 C.11: Modality LUT, VOI LUT, then MONOCHROME1 inversion.

    Linear rescale and windows are returned for preprocessing to apply after reduction; LUT
    tables are applied here (they are not linear), and the transform then covers their output.
    ``little_endian`` is the transfer syntax's byte order, which OW table data is stored in.
    """
    if photometric == "PALETTE COLOR":
        palette = header if little_endian else _little_endian_palette(header)
        rgb = _apply_table(apply_color_lut, stored, palette, "Palette Color LUT")  # C.7.6.3.1.5
        return rgb, _full_range(rgb), ["palette"]
    if samples_per_pixel == 3:
        # The VOI LUT module applies to MONOCHROME images only (PS3.3 C.11.2.1.2).
        return stored, _full_range(stored, bits_stored), []
    slope, intercept = _rescale(header)
    window = _window(header)
    tables = [name for keyword, name in _TABLES.items() if keyword in header]
    if tables:
        # A VOI LUT's input is the Modality LUT's output, so a VOI table forces that step too.
        stored = _apply_table(apply_modality_lut, stored, header, "Modality LUT")
        slope, intercept = 1.0, 0.0
    if "modality" in tables:
        window = window or _table_window(header.ModalityLUTSequence[0])
    if "voi" in tables:
        stored = _apply_table(apply_voi_lut, stored, header, "VOI LUT")
        window = _table_window(header.VOILUTSequence[0])
    invert = photometric == "MONOCHROME1"  # PS3.3 C.7.6.3.1.2
    return stored, IntensityTransform(slope, intercept, window, invert), tables


def _little_endian_palette(header: Dataset) -> Dataset:
    """The palette of a big endian file, its OW table data in little endian words.

    pydicom's ``apply_color_lut`` reads non-segmented Palette Color LUT Data (OW, PS3.3
    C.7.6.3.1.6) as little endian whatever the file's byte order; swapping each 16-bit word
    gives it what it expects (8-bit entries packed in OW words are swapped with their word).
    Segmented tables are read in the file's order by pydicom already.
    """
    if "RedPaletteColorLookupTableData" not in header:
        return header
    palette = Dataset()
    for element in header:
        if "PaletteColor" in element.keyword or element.keyword == "PixelPresentation":
            palette.add(element)
    for colour in ("Red", "Green", "Blue", "Alpha"):
        keyword = f"{colour}PaletteColorLookupTableData"
        value = palette.get(keyword)
        if isinstance(value, bytes) and len(value) % 2 == 0:
            swapped = np.frombuffer(value, ">u2").astype("<u2").tobytes()
            palette.add_new(keyword, "OW", swapped)
    return palette


def _apply_table(
    apply: Callable[[np.ndarray, Dataset], np.ndarray],
    stored: np.ndarray,
    header: Dataset,
    name: str,
) -> np.ndarray:
    try:
        return apply(stored, header)
    except Exception as exc:  # a malformed LUT Descriptor or LUT Data
        raise ImageError(
            ErrorCode.DICOM_INVALID, f"the {name} cannot be applied ({type(exc).__name__})"
        ) from exc


def _full_range(pixels: np.ndarray, bits: int | None = None) -> IntensityTransform:
    top = 2 ** (bits or 8 * pixels.dtype.itemsize) - 1
    return IntensityTransform(value_range=(0.0, float(top)))


def _rescale(header: Dataset) -> tuple[float, float]:
    """Rescale Slope and Intercept (PS3.3 C.11.1.1.2); absent means identity."""
    slope = _first_number(header, "RescaleSlope", 1.0)
    intercept = _first_number(header, "RescaleIntercept", 0.0)
    if slope is None or intercept is None or slope == 0:
        raise ImageError(ErrorCode.DICOM_INVALID, "Rescale Slope/Intercept are not valid")
    return slope, intercept


def _window(header: Dataset) -> Window | None:
    """The first VOI window (PS3.3 C.11.2.1.2); an invalid one is ignored, not fatal."""
    center = _first_number(header, "WindowCenter")
    width = _first_number(header, "WindowWidth")
    function = str(header.get("VOILUTFunction", "LINEAR")).strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"  # the default when absent (PS3.3 C.11.2.1.3)
    # PS3.3 C.11.2.1.2.1: LINEAR needs a width >= 1, the other functions a width > 0.
    if center is None or width is None or width < (1 if function == "LINEAR" else 0) or width == 0:
        return None
    return Window(center=center, width=width, function=function)


def _table_window(item: Dataset) -> Window:
    """A window spanning a LUT's output: 0 to 2**bits - 1 (LUT Descriptor, PS3.3 C.11.1.1.1)."""
    top = float(2 ** int(item.LUTDescriptor[2]) - 1)
    return Window(center=top / 2, width=top, function="LINEAR_EXACT")


def _first_number(header: Dataset, keyword: str, default: float | None = None) -> float | None:
    try:
        value = header.get(keyword)
        if value is None or value == "":
            return default
        number = float(value[0] if isinstance(value, MultiValue | list) else value)
    except Exception:  # not a number
        return None
    return number if math.isfinite(number) else None
