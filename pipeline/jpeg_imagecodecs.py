"""A pydicom decoding plugin: imagecodecs (libjpeg-turbo 3, CharLS) for JPEG and JPEG-LS frames.

pylibjpeg-libjpeg, pydicom's usual plugin for these syntaxes, refuses some streams that DCMTK,
GDCM and libjpeg-turbo all read identically (``JPEG-lossy.dcm``: a 12-bit extended JPEG with a
marker where libjpeg does not expect one). pydicom tries a decoder's plugins in turn, so this one,
added last by :func:`pipeline.dicom_codec.register_fallback`, is used only when the first refuses.

Like every pydicom plugin it returns the stored samples without colour conversion (pydicom turns
YBR into RGB afterwards), colour-by-pixel, in the smallest container of the stream's precision.
"""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
from pydicom import uid
from pydicom.pixels.decoders.base import DecodeRunner

_JPEG = (*uid.JPEGTransferSyntaxes,)
_JPEG_LS = (*uid.JPEGLSTransferSyntaxes,)
# Read by pydicom's plugin registry to name what is missing (Decoder.missing_dependencies).
DECODER_DEPENDENCIES = {syntax: ("imagecodecs>=2024.9",) for syntax in (*_JPEG, *_JPEG_LS)}


def is_available(syntax: str) -> bool:
    """Is the plugin usable for ``syntax`` (pydicom's plugin protocol)?"""
    return syntax in DECODER_DEPENDENCIES and find_spec("imagecodecs") is not None


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """Decode one JPEG or JPEG-LS frame to its stored samples (pydicom's plugin protocol).

    Parameters
    ----------
    src : bytes
        One encoded frame.
    runner : pydicom.pixels.decoders.base.DecodeRunner
        The frame's Image Pixel options; ``bits_allocated`` and ``planar_configuration`` are
        set to what this returns.

    Returns
    -------
    bytes
        ``Rows x Columns x Samples`` samples, colour-by-pixel, uint8 for a precision up to 8
        bits, else uint16; colour samples exactly as stored (YBR stays YBR).
    """
    import imagecodecs  # imported here: pydicom loads plugin modules on every start

    if runner.transfer_syntax in _JPEG_LS:
        array = imagecodecs.jpegls_decode(src)
    else:
        # Same colour space in and out: libjpeg-turbo then converts nothing (raw samples).
        space = "RGB" if runner.photometric_interpretation == "RGB" else "YCBCR"
        three = runner.samples_per_pixel == 3
        array = imagecodecs.jpeg8_decode(
            src, colorspace=space if three else None, outcolorspace=space if three else None
        )
    runner.set_option("planar_configuration", 0)
    runner.set_option("bits_allocated", 8 * array.dtype.itemsize)
    return np.ascontiguousarray(array).tobytes()
