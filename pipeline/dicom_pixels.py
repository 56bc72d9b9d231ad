"""Where a DICOM file's pixel data is, and whether it fits the header, before decoding.

The header read (:mod:`pipeline.dicom`) stops before the pixel data element; this module finds
that element in the bytes, without copying an uncompressed value, and checks the sample type
and the length (or, for compressed data, the encapsulation and the first frame's own size)
against the Image Pixel module. Decoding itself is :mod:`pipeline.dicom_codec`'s.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom import dcmread, uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from pipeline.errors import ErrorCode, ImageError
from pipeline.guards import codestream_size

PIXEL_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
# Float Pixel Data is 32-bit and Double Float Pixel Data 64-bit IEEE floats (PS3.3 C.7.6.24).
FLOAT_BITS = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}
_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM, _SEQUENCE_DELIMITER = 0xE000FFFE, 0xE0DDFFFE  # (FFFE,E000), (FFFE,E0DD) read as "<L"


@dataclass(frozen=True)
class PixelElement:
    """The pixel data element: its keyword, VR (None when implicit) and encoded value."""

    keyword: str
    vr: str | None
    value: bytes | memoryview


@dataclass(frozen=True)
class Geometry:
    """The Image Pixel module (PS3.3 C.7.6.3) values decoding needs, named as pydicom's options."""

    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int


def locate_pixels(data: bytes, offset: int, header: Dataset, syntax: uid.UID) -> PixelElement:
    """Find the pixel data element's value; ``offset`` is where the header read stopped."""
    if syntax == uid.DeflatedExplicitVRLittleEndian:
        return _inflated_pixels(data)
    if offset >= len(data):
        if _ends_early(header, len(data)):
            raise ImageError(ErrorCode.TRUNCATED_FILE, "the file ends inside the header")
        raise ImageError(ErrorCode.DICOM_NO_PIXEL_DATA, "the file has no Pixel Data element")
    keyword, vr, length, start = _element_header(data, offset, syntax)
    if length == _UNDEFINED_LENGTH:
        if not syntax.is_encapsulated:
            raise ImageError(
                ErrorCode.DICOM_INVALID, "undefined-length Pixel Data in a native syntax"
            )
        # pydicom walks the fragments up to the Sequence Delimiter (PS3.5 A.4); a bytes copy
        # of the compressed stream, as its encapsulation functions prefer bytes to views.
        return PixelElement(keyword, vr, data[start:])
    if syntax.is_encapsulated:
        raise ImageError(
            ErrorCode.DICOM_INVALID, "compressed Pixel Data must be encapsulated (PS3.5 A.4)"
        )
    if start + length > len(data):
        raise ImageError(
            ErrorCode.TRUNCATED_FILE,
            f"Pixel Data declares {length} bytes, the file holds {len(data) - start}",
        )
    return PixelElement(keyword, vr, memoryview(data)[start : start + length])


def _element_header(data: bytes, offset: int, syntax: uid.UID) -> tuple[str, str | None, int, int]:
    """Parse the pixel data element header at ``offset``: keyword, VR, length, value offset.

    PS3.5 7.1.2 (explicit VR; OB, OW, OF, OD have a 32-bit length) or 7.1.3 (implicit VR).
    Some writers use implicit VR under an explicit syntax; pydicom reads them, and so do we.
    """
    order = "<" if syntax.is_little_endian else ">"
    explicit = not syntax.is_implicit_VR and data[offset + 4 : offset + 6] in _PIXEL_VRS
    size = 12 if explicit else 8
    head = data[offset : offset + size]
    if len(head) < size:
        raise ImageError(ErrorCode.TRUNCATED_FILE, "the file ends inside the Pixel Data header")
    group, element = struct.unpack(f"{order}HH", head[:4])
    (length,) = struct.unpack(f"{order}L", head[-4:])
    keyword = PIXEL_KEYWORDS.get(group << 16 | element)
    if keyword is None:
        raise ImageError(ErrorCode.DICOM_INVALID, "the header cannot be read to its end")
    return keyword, head[4:6].decode("latin-1") if explicit else None, length, offset + size


def _inflated_pixels(data: bytes) -> PixelElement:
    # Offsets in a deflated file (PS3.5 A.5) refer to the inflated stream: read it all.
    dataset = dcmread(BytesIO(data), force=True)
    for tag, keyword in PIXEL_KEYWORDS.items():
        raw = dataset.get_item(tag, keep_deferred=True)
        if raw is None:
            continue
        if _is_cut_short(raw):
            raise ImageError(ErrorCode.TRUNCATED_FILE, "the inflated Pixel Data is truncated")
        element = dataset[tag]
        return PixelElement(keyword, element.VR, element.value)
    raise ImageError(ErrorCode.DICOM_NO_PIXEL_DATA, "the file has no Pixel Data element")


def _ends_early(dataset: Dataset, size: int) -> bool:
    """Did the file end inside the last element read, in its value or in the next header?

    pydicom stops quietly at the end of the data, with a short last value or after dropping a
    partial element header; either way the last value does not end where the file does.
    """
    tags = list(dataset.keys())
    last = dataset.get_item(tags[-1], keep_deferred=True) if tags else None
    if not isinstance(last, RawDataElement) or last.length == _UNDEFINED_LENGTH:
        return False
    return last.value_tell + last.length != size


def _is_cut_short(element: Any) -> bool:
    return (
        isinstance(element, RawDataElement)
        and isinstance(element.value, bytes)
        and element.length != _UNDEFINED_LENGTH
        and len(element.value) < element.length
    )


def check_sample_type(keyword: str, geometry: Geometry) -> None:
    """Bits Allocated / Stored / Pixel Representation (PS3.5 8.1.1, PS3.3 C.7.6.3.1)."""
    if keyword in FLOAT_BITS:  # float32 or float64 by definition (PS3.3 C.7.6.24)
        if geometry.bits_allocated != FLOAT_BITS[keyword]:
            raise ImageError(
                ErrorCode.DICOM_INVALID,
                f"{keyword} with BitsAllocated {geometry.bits_allocated}",
            )
        return
    bits, stored = geometry.bits_allocated, geometry.bits_stored
    if bits not in (1, 8, 16):
        sign = "signed" if geometry.pixel_representation else "unsigned"
        raise ImageError(
            ErrorCode.UNSUPPORTED_SAMPLE_TYPE,
            f"{bits}-bit {sign} samples are not supported (8 or 16 bits)",
            bits_allocated=bits,
        )
    if not 1 <= stored <= bits or geometry.pixel_representation not in (0, 1):
        raise ImageError(
            ErrorCode.DICOM_INVALID,
            f"BitsStored {stored} / PixelRepresentation {geometry.pixel_representation} "
            f"do not fit BitsAllocated {bits}",
        )


def check_length(pixels: PixelElement, geometry: Geometry, syntax: uid.UID) -> int:
    """Check native pixel data holds Rows x Columns x Samples x Bits; return excess bytes.

    PS3.5 8.1.1 pads odd lengths with one byte. Short data is a mismatch; so is a surplus of
    a whole frame or more (smaller Rows/Columns than the real image, or undeclared frames). A
    smaller surplus is trailing padding, seen in the wild and ignored as pydicom does.
    """
    if syntax.is_encapsulated:
        _check_encapsulated(pixels.value, geometry)
        return 0
    bits = FLOAT_BITS.get(pixels.keyword, geometry.bits_allocated)
    # YBR_FULL_422 stores two samples per pixel on average (PS3.3 C.7.6.3.1.2).
    samples = (
        2 if geometry.photometric_interpretation == "YBR_FULL_422" else geometry.samples_per_pixel
    )
    expected = math.ceil(geometry.rows * geometry.columns * samples * bits / 8)
    actual = len(pixels.value)
    excess = actual - expected - expected % 2
    if actual < expected or excess >= expected:
        raise ImageError(
            ErrorCode.DICOM_PIXEL_DATA_MISMATCH,
            f"Pixel Data holds {actual} bytes, {geometry.rows} x {geometry.columns} x "
            f"{geometry.samples_per_pixel} samples x {bits} bits need {expected}",
            actual_bytes=actual,
            expected_bytes=expected,
        )
    return max(excess, 0)


def _check_encapsulated(value: bytes | memoryview, geometry: Geometry) -> None:
    """Walk the items of encapsulated Pixel Data and check the first frame's own size.

    PS3.5 A.4: a Basic Offset Table item, fragment items, then a Sequence Delimiter; without
    the delimiter the file was cut. A compressed frame carries its size, which must be
    Columns x Rows: otherwise the codec allocates what the codestream says (a bomb behind a
    small header) or the pixels are reshaped into a wrong image of the same count.
    """
    offset, first = 0, -1
    while True:
        head = bytes(value[offset : offset + 8])
        if len(head) < 8:
            raise ImageError(ErrorCode.TRUNCATED_FILE, "the file ends inside the Pixel Data")
        tag, length = struct.unpack("<LL", head)
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM or length == _UNDEFINED_LENGTH:
            raise ImageError(ErrorCode.DICOM_INVALID, "malformed encapsulated Pixel Data")
        first = offset + 8 if offset and first < 0 else first
        offset += 8 + length
    if first < 0:
        raise ImageError(ErrorCode.DICOM_INVALID, "encapsulated Pixel Data without fragments")
    size = codestream_size(value[first : first + 65536])
    if size is not None and size != (geometry.columns, geometry.rows):
        raise ImageError(
            ErrorCode.DICOM_PIXEL_DATA_MISMATCH,
            f"the compressed frame is {size[0]} x {size[1]} pixels, the header says "
            f"{geometry.columns} x {geometry.rows}",
        )
