"""JPEG 2000 at reduced resolution: decode only the wavelet levels a model's input needs.

A JPEG 2000 codestream holds its image as a low band plus detail bands per decomposition level
(ISO 15444-1 Annex F); OpenJPEG can stop ``level`` steps early and return the low band of
``ceil(size / 2**level)`` pixels, skipping most of the work (2048 x 2048 16-bit lossless: about
0.7 s in full, about 15 ms at level 3). The low band is not an area average: it is the wavelet's
own smoothing, and differs from a full decode followed by an area reduction by up to 0.2 on a
0-1 scale at level 3. So it is used only for models whose card allows it
(``preprocess.reduced_jpeg2000_tolerance``), a tolerance on scores that
:func:`pipeline.reduced_check.check_reduced_jpeg2000` proves on real images.

Pillow (OpenJPEG inside) is the decoder here: pydicom's plugins have no reduce option.
"""

from __future__ import annotations

import struct
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.encaps import generate_frames

from pipeline.dicom_pixels import Geometry

REDUCIBLE = frozenset({uid.JPEG2000Lossless, uid.JPEG2000})
_SIZ, _COD, _SOT = b"\xff\x51", 0xFF52, 0xFF90


def decode_reduced(
    value: bytes | memoryview, geometry: Geometry, target: tuple[int, int]
) -> np.ndarray | None:
    """Stored values of the first frame at the coarsest resolution still >= ``target``.

    Parameters
    ----------
    value : bytes or memoryview
        Encapsulated Pixel Data (PS3.5 A.4) of a JPEG 2000 syntax, already checked.
    geometry : Geometry
        The header's Image Pixel module; only one-sample images are reduced.
    target : (int, int)
        ``(rows, columns)`` of the model's input: the reduced image is never smaller.

    Returns
    -------
    numpy.ndarray or None
        ``(ceil(Rows / 2**level), ceil(Columns / 2**level))``, uint8, uint16 or int16 (signed
        values sign-extended from Bits Stored), or None when no level applies or the codestream
        differs from the header in sign or precision: the caller then decodes in full, where
        pydicom's corrections for such files live.
    """
    if geometry.samples_per_pixel != 1:
        return None
    frame = bytes(next(generate_frames(bytes(value), number_of_frames=1)))
    header = _main_header(frame)
    if header is None:
        return None
    precision, signed, levels = header
    if precision != geometry.bits_stored or signed != bool(geometry.pixel_representation):
        return None
    level = reduction_level(geometry.rows, geometry.columns, target, levels)
    if level == 0:
        return None
    image = Image.open(BytesIO(frame), formats=["JPEG2000"])
    image.reduce = level  # type: ignore[method-assign, assignment]  # Pillow's J2K attribute
    image.load()
    return _stored_values(np.asarray(image), precision, signed)


def reduction_level(rows: int, columns: int, target: tuple[int, int], levels: int) -> int:
    """The largest level (<= the codestream's ``levels``) keeping both sides >= ``target``."""
    level = 0
    while (
        level < levels
        and -(-rows // 2 ** (level + 1)) >= target[0]
        and -(-columns // 2 ** (level + 1)) >= target[1]
    ):
        level += 1
    return level


def _main_header(frame: bytes) -> tuple[int, bool, int] | None:
    """Precision and sign of component 0 (SIZ, A.5.1) and decomposition levels (COD, A.6.1)."""
    if not frame.startswith(b"\xff\x4f" + _SIZ) or len(frame) < 45:
        return None
    ssiz = frame[42]
    offset = 4 + struct.unpack(">H", frame[4:6])[0]
    while offset + 4 <= len(frame):
        marker, length = struct.unpack(">HH", frame[offset : offset + 4])
        if marker == _SOT:
            return None
        if marker == _COD and offset + 10 <= len(frame):
            return (ssiz & 0x7F) + 1, bool(ssiz & 0x80), frame[offset + 9]
        offset += 2 + length
    return None


def _stored_values(array: np.ndarray, precision: int, signed: bool) -> np.ndarray:
    """Undo Pillow's widening: it returns N-bit samples scaled up to 8 or 16 bits, and signed
    samples level-shifted to unsigned (as pydicom's own Pillow plugin undoes it)."""
    values = np.array(array, dtype=np.uint8 if precision <= 8 else np.uint16)
    bits = 8 * values.dtype.itemsize
    if signed:
        np.bitwise_xor(values, 1 << (bits - 1), out=values)  # offset -> two's complement
        values = values.view(np.int8 if bits == 8 else np.int16)
    if bits > precision:
        np.right_shift(values, bits - precision, out=values)  # arithmetic when signed
    return values.astype(np.int16) if values.dtype == np.int8 else values
