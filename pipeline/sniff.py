"""What an image's bytes are: the format, judged from the content before anything else.

The format is decided by content, never by file name: uploads are named by users and URIs, and
a ``.dcm`` that is really a PNG (or the reverse) is common. Whether the declared size is
acceptable is another question, answered by :mod:`pipeline.guards` inside each decoder.
"""

from __future__ import annotations

import struct

from pipeline.errors import ErrorCode, ImageError
from pipeline.image import ImageFormat

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOI marker followed by the first byte of the next marker (PS3.5 refers to ISO 10918-1 B.1.1.3)
JPEG_SIGNATURE = b"\xff\xd8\xff"
DICOM_PREFIX = b"DICM"
PREAMBLE_LENGTH = 128  # DICOM PS3.10 7.1: 128-byte preamble, then "DICM"

# Two-letter Value Representations (PS3.5 6.2); an explicit VR element header carries one.
# fmt: off
_VRS = frozenset({
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV",
})
# fmt: on
# Group of the first element of a data set written without File Meta Information: group 0x0008
# (Specific Character Set, SOP Class UID...) is the lowest group a composite IOD normally uses.
_BARE_DATASET_GROUP = 0x0008


def sniff_format(data: bytes) -> ImageFormat:
    """Return the format of ``data`` judged from its first bytes.

    Parameters
    ----------
    data : bytes
        The whole file, or at least its first 140 bytes.

    Returns
    -------
    ImageFormat

    Raises
    ------
    ImageError
        ``EMPTY_FILE`` for no bytes, ``UNKNOWN_FORMAT`` when no signature matches.

    Notes
    -----
    DICOM is recognised in four shapes: the PS3.10 file (preamble + ``DICM``), the same without
    its preamble (starting with ``DICM``), a file starting directly with a group 0x0002 File
    Meta element, and a bare data set with no File Meta Information at all. The last one is
    recognised only so that the DICOM decoder can reject it with a precise ``DICOM_INVALID``
    instead of a vague ``UNKNOWN_FORMAT``.
    """
    if not data:
        raise ImageError(ErrorCode.EMPTY_FILE, "the file is empty")
    if data.startswith(PNG_SIGNATURE):
        return ImageFormat.PNG
    if data.startswith(JPEG_SIGNATURE):
        return ImageFormat.JPEG
    if _looks_like_dicom(data):
        return ImageFormat.DICOM
    raise ImageError(
        ErrorCode.UNKNOWN_FORMAT, "not a DICOM, PNG or JPEG file", size_bytes=len(data)
    )


def _looks_like_dicom(data: bytes) -> bool:
    if data[PREAMBLE_LENGTH : PREAMBLE_LENGTH + 4] == DICOM_PREFIX:
        return True
    if data.startswith(DICOM_PREFIX):
        return True
    if _explicit_vr_element_at(data, 0, group=0x0002, byte_order="<"):
        return True
    # A bare data set; offset 1 tolerates one stray leading byte: pydicom's no_meta.dcm has an
    # odd length and a leading space before its (0008,0005) element.
    return any(_bare_dataset_at(data, offset) for offset in (0, 1))


def _bare_dataset_at(data: bytes, offset: int) -> bool:
    group = _BARE_DATASET_GROUP
    return (
        _explicit_vr_element_at(data, offset, group=group, byte_order="<")
        or _explicit_vr_element_at(data, offset, group=group, byte_order=">")
        or _implicit_vr_element_at(data, offset, group=group)
    )


def _explicit_vr_element_at(data: bytes, offset: int, *, group: int, byte_order: str) -> bool:
    """Is there an explicit VR element header of ``group`` at ``offset`` (PS3.5 7.1.2)?"""
    header = data[offset : offset + 6]
    if len(header) < 6:
        return False
    found_group, _element = struct.unpack(f"{byte_order}HH", header[:4])
    return found_group == group and header[4:6].decode("latin-1") in _VRS


def _implicit_vr_element_at(data: bytes, offset: int, *, group: int) -> bool:
    """Is there an implicit VR little endian element of ``group`` at ``offset`` (PS3.5 7.1.3)?"""
    header = data[offset : offset + 8]
    if len(header) < 8:
        return False
    found_group, _element, length = struct.unpack("<HHL", header)
    # Values have even lengths (PS3.5 7.1.1); group 0x0008 opens with short strings. Both cut
    # down coincidences without needing more of the file than its head.
    return bool(found_group == group and length % 2 == 0 and length < 0x10000)
