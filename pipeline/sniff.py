"""What an image's bytes are, and whether their declared size is acceptable, before decoding.

The format is decided by content, never by file name: uploads are named by users and URIs, and
a ``.dcm`` that is really a PNG (or the reverse) is common. The geometry check lives here too
because every decoder runs it on header values before it allocates a single pixel.
"""

from __future__ import annotations

import struct
import zlib

from pipeline.errors import ErrorCode, ImageError
from pipeline.image import ImageFormat
from pipeline.limits import ImageLimits

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
# Frame header markers: SOF0-SOF15 (ISO 10918-1 B.1.1.3, bar DHT, JPG, DAC) and SOF55 (JPEG-LS).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
_J2K_START = b"\xff\x4f\xff\x51"  # SOC then SIZ (ISO 15444-1 A.4.1, A.5.1)
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


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Check an image's declared size against ``limits`` before any pixel is decoded.

    Parameters
    ----------
    width, height : int
        Columns and rows as declared by the file's header, in pixels.
    limits : ImageLimits

    Raises
    ------
    ImageError
        ``DECOMPRESSION_BOMB`` when ``width * height`` exceeds ``limits.max_pixels`` (checked
        first: it is the allocation that hurts), ``IMAGE_TOO_LARGE`` when a side exceeds
        ``limits.max_side``, ``IMAGE_TOO_SMALL`` when a side is under ``limits.min_side``.
    """
    sizes: dict[str, str | int | float] = {"width": width, "height": height}
    if width * height > limits.max_pixels:
        raise ImageError(
            ErrorCode.DECOMPRESSION_BOMB,
            f"the header declares {width} x {height} pixels, more than the limit of "
            f"{limits.max_pixels} pixels",
            max_pixels=limits.max_pixels,
            **sizes,
        )
    if max(width, height) > limits.max_side:
        raise ImageError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the image is {width} x {height} pixels, a side is over {limits.max_side}",
            max_side=limits.max_side,
            **sizes,
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            ErrorCode.IMAGE_TOO_SMALL,
            f"the image is {width} x {height} pixels, a side is under {limits.min_side}",
            min_side=limits.min_side,
            **sizes,
        )


def check_inflated_size(deflated: bytes | memoryview, max_bytes: int) -> None:
    """Refuse a raw deflate stream (DICOM PS3.5 A.5) that inflates to more than ``max_bytes``.

    Inflates in 1 MiB steps and keeps nothing, so a bomb costs time bounded by ``max_bytes``
    and no memory; a stream zlib cannot read is left for the decoder to report.

    Raises
    ------
    ImageError
        ``DECOMPRESSION_BOMB``.
    """
    step = 1 << 20
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        total = len(inflater.decompress(deflated, step))
        while inflater.unconsumed_tail and total <= max_bytes:
            total += len(inflater.decompress(inflater.unconsumed_tail, step))
    except zlib.error:
        return
    if total > max_bytes:
        raise ImageError(
            ErrorCode.DECOMPRESSION_BOMB,
            f"the deflated data set inflates to more than {max_bytes} bytes",
            max_bytes=max_bytes,
        )


def codestream_size(stream: bytes | memoryview) -> tuple[int, int] | None:
    """The ``(width, height)`` a JPEG, JPEG-LS or JPEG 2000 codestream declares, if any.

    Parameters
    ----------
    stream : bytes or memoryview
        The start of the codestream (its headers; the first kilobytes are enough).

    Returns
    -------
    (int, int) or None
        None for another format, a size defined later (JPEG DNL) or unreadable headers.
    """
    head = bytes(stream[:65536])
    if head.startswith(_J2K_START) and len(head) >= 24:
        # SIZ: Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz, YOsiz; the image is the grid minus offsets.
        x, y, x_offset, y_offset = struct.unpack(">4L", head[8:24])
        return x - x_offset, y - y_offset
    if not head.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 9 <= len(head) and head[offset] == 0xFF:
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
        elif marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", head[offset + 5 : offset + 9])
            return (width, height) if height else None
        elif marker == 0xDA:  # a scan before any frame header: nothing to learn
            return None
        else:  # a marker segment: skip its length
            offset += 2 + struct.unpack(">H", head[offset + 2 : offset + 4])[0]
    return None
