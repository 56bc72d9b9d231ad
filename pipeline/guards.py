"""Size guards: is an image's declared size acceptable, before a pixel is allocated?

Every decoder reads the size a header declares (DICOM Rows and Columns, a PNG's IHDR, a JPEG or
JPEG 2000 frame header) and checks it here before decoding: a small file may declare a huge
image (a decompression bomb), and a compressed frame may declare another size than its DICOM
header. What the bytes *are* is :mod:`pipeline.sniff`'s question, answered once, before this.
"""

from __future__ import annotations

import struct
import zlib

from pipeline.errors import ErrorCode, ImageError
from pipeline.limits import ImageLimits

# Frame header markers: SOF0-SOF15 (ISO 10918-1 B.1.1.3, bar DHT, JPG, DAC) and SOF55 (JPEG-LS).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
_J2K_START = b"\xff\x4f\xff\x51"  # SOC then SIZ (ISO 15444-1 A.4.1, A.5.1)


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

    Raises
    ------
    ImageError
        ``CORRUPT_IMAGE`` for a JPEG 2000 image and tile size (SIZ) segment that breaks the
        rules of ISO 15444-1 A.5.1: such a codestream is broken, whatever size it seems to say.
    """
    head = bytes(stream[:65536])
    if head.startswith(_J2K_START):
        return _j2k_size(head)
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


def _j2k_size(head: bytes) -> tuple[int, int]:
    """The image size of a SIZ segment (ISO 15444-1 A.5.1), checked for consistency.

    The image is the reference grid minus its offsets. A side over 65535 cannot be a DICOM
    frame at all (Rows and Columns are 16-bit, PS3.3 C.7.6.3), so it is corruption, not a
    header that disagrees with a plausible frame.
    """
    if len(head) < 42:
        raise ImageError(ErrorCode.CORRUPT_IMAGE, "the JPEG 2000 SIZ segment is cut short")
    length = struct.unpack(">H", head[4:6])[0]
    x, y, x_offset, y_offset, x_tile, y_tile, x_tile_offset, y_tile_offset = struct.unpack(
        ">8L", head[8:40]
    )
    (components,) = struct.unpack(">H", head[40:42])
    width, height = x - x_offset, y - y_offset
    consistent = (
        1 <= components <= 16384
        and length == 38 + 3 * components
        and width > 0
        and height > 0
        and x_tile > 0
        and y_tile > 0
        and x_tile_offset <= x_offset < x_tile_offset + x_tile
        and y_tile_offset <= y_offset < y_tile_offset + y_tile
    )
    if not consistent or max(width, height) > 0xFFFF:
        raise ImageError(
            ErrorCode.CORRUPT_IMAGE, "the JPEG 2000 image and tile size (SIZ) segment is invalid"
        )
    return width, height
