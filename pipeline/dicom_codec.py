"""Decode located DICOM pixel data with pydicom's decoders, and name what a missing one needs.

pydicom keeps a decoder per transfer syntax, each with plugins (pylibjpeg, Pillow, GDCM...) that
it tries in turn until one succeeds. This module asks it which syntaxes it can decode and what is
missing when it cannot (``missing_dependencies``), and adds one plugin of ours: imagecodecs
(libjpeg-turbo 3) for the JPEG syntaxes, tried when pylibjpeg-libjpeg refuses a stream that other
decoders read (see :mod:`pipeline.jpeg_imagecodecs`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from pydicom import uid
from pydicom.pixels.decoders.base import Decoder, get_decoder

from pipeline.dicom_pixels import Geometry, PixelElement
from pipeline.errors import ErrorCode, ImageError

FALLBACK_PLUGIN = "imagecodecs"
_FALLBACK_SYNTAXES = (*uid.JPEGTransferSyntaxes, *uid.JPEGLSTransferSyntaxes)


def register_fallback() -> None:
    """Add the imagecodecs plugin, last, to the JPEG and JPEG-LS decoders (once per process).

    pydicom tries a decoder's plugins in the order they were added, so pylibjpeg stays first.
    """
    for syntax in _FALLBACK_SYNTAXES:
        decoder = get_decoder(syntax)
        known = [*decoder.available_plugins, *decoder.missing_dependencies]
        if not any(name.split(" ")[0] == FALLBACK_PLUGIN for name in known):
            decoder.add_plugin(FALLBACK_PLUGIN, ("pipeline.jpeg_imagecodecs", "decode_frame"))


def decoder_for(syntax: uid.UID) -> Decoder:
    """pydicom's decoder for ``syntax``, refused when unknown or without a usable plugin.

    Raises
    ------
    ImageError
        ``DICOM_UNSUPPORTED_TRANSFER_SYNTAX`` when pydicom has no decoder for the syntax,
        ``DICOM_DECODER_MISSING`` (naming what each plugin needs) when none is installed.
    """
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        # Only UIDs the standard registers are named: anything else (private, or made up under
        # the DICOM root) is header text, not ours to print (issue 9).
        registered = syntax in uid.UID_dictionary
        name = f"{syntax.name} ({syntax})" if registered else "an unrecognised transfer syntax"
        raise ImageError(
            ErrorCode.DICOM_UNSUPPORTED_TRANSFER_SYNTAX, f"{name} is not supported"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise ImageError(
            ErrorCode.DICOM_DECODER_MISSING,
            f"decoding {syntax.name} needs one of: {missing}",
            missing=missing,
        )
    return decoder


def decode_pixels(pixels: PixelElement, geometry: Geometry, syntax: uid.UID) -> np.ndarray:
    options: dict[str, Any] = asdict(geometry) | {
        "transfer_syntax_uid": syntax,
        "pixel_keyword": pixels.keyword,
        "number_of_frames": 1,
        "allow_excess_frames": False,
    }
    if pixels.vr is not None:
        options["pixel_vr"] = pixels.vr
    if not syntax.is_encapsulated:
        # A view of `data`: pydicom's own unused-bits correction always copies and makes two
        # passes; _clear_unused_bits does it only when a value needs it.
        options |= {"view_only": True, "correct_unused_bits": False}
    try:
        # Compressed data: pydicom clears unused bits / sign-extends itself (correct_unused_bits,
        # or the JPEG 2000 / JPEG-LS sign corrections). YBR becomes RGB (as_rgb).
        array, _ = get_decoder(syntax).as_array(pixels.value, index=0, **options)
    except Exception as exc:  # plugins raise RuntimeError, ValueError, OSError...
        raise ImageError(
            ErrorCode.CORRUPT_IMAGE,
            f"the {syntax.name} pixel data cannot be decoded ({type(exc).__name__})",
        ) from exc
    expected = (geometry.rows, geometry.columns) + ((3,) if geometry.samples_per_pixel == 3 else ())
    if array.shape != expected:
        raise ImageError(
            ErrorCode.DICOM_PIXEL_DATA_MISMATCH,
            f"decoded shape {array.shape} differs from the header's {expected}",
        )
    if not array.dtype.isnative:  # Explicit VR Big Endian
        array = array.astype(array.dtype.newbyteorder("="))
    if not syntax.is_encapsulated and pixels.keyword == "PixelData":
        array = _clear_unused_bits(array, geometry)
    if array.dtype == np.int8:  # no int8 downstream; widening is cheap and exact
        array = array.astype(np.int16)
    return array


def _clear_unused_bits(array: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Keep only the low Bits Stored bits of each value, sign-extended when signed.

    PS3.5 8.1.1: the bits above Bits Stored are not part of the value (old files keep overlays
    there). A value lies in the Bits Stored range exactly when those bits are already right, so
    the usual clean image costs a min/max pass and stays a view; only a dirty one is copied.
    """
    bits = geometry.bits_stored
    shift = 8 * array.dtype.itemsize - bits
    if shift <= 0 or geometry.bits_allocated == 1 or array.size == 0:
        return array
    signed = geometry.pixel_representation == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if low <= int(array.min()) and int(array.max()) <= high:
        return array
    cleared: np.ndarray = np.left_shift(array, shift)
    np.right_shift(cleared, shift, out=cleared)  # arithmetic for signed dtypes: sign-extends
    return cleared
