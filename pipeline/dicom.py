"""Decode one DICOM image (a PS3.10 file) into its stored values and its intensity rules.

The header is parsed once, stopping before the pixel data (``stop_before_pixels``); every check
that can fail (transfer syntax, decoder, geometry, frames, photometric, sample type, length) runs
on it before a pixel is decoded. Uncompressed pixel data is then decoded from a zero-copy view of
the input bytes, so a 2048 x 2048 16-bit image costs one copy at most (to clear unused bits).
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from io import BytesIO
from typing import Any

import numpy as np
from pydicom import config, dcmread, uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels.decoders.base import get_decoder

from pipeline.dicom_facts import image_facts, raw_identifiers
from pipeline.dicom_intensity import intensity_rules
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage, ImageFormat
from pipeline.limits import ImageLimits
from pipeline.sniff import DICOM_PREFIX, check_dimensions, check_inflated_size, codestream_size

_NATIVE = [uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian]
_J2K = [uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K]
# Transfer syntax -> the package we rely on to decode it, named when its plugin is missing.
DECODER_PACKAGES: dict[str, str] = {
    **dict.fromkeys([*_NATIVE, uid.DeflatedExplicitVRLittleEndian], "pydicom"),
    uid.RLELossless: "pylibjpeg-rle",
    **dict.fromkeys(uid.JPEGTransferSyntaxes + uid.JPEGLSTransferSyntaxes, "pylibjpeg-libjpeg"),
    **dict.fromkeys(_J2K, "pylibjpeg-openjpeg"),
}
# Photometric Interpretation (PS3.3 C.7.6.3.1.2) -> Samples per Pixel. YBR is returned as RGB.
_PHOTOMETRIC_SAMPLES = dict.fromkeys(("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"), 1)
_PHOTOMETRIC_SAMPLES |= dict.fromkeys(("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"), 3)
_OTHER_PHOTOMETRICS = {"YBR_PARTIAL_420", "YBR_PARTIAL_422", "ARGB", "CMYK", "HSV"}
_PIXEL_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM, _SEQUENCE_DELIMITER = 0xE000FFFE, 0xE0DDFFFE  # (FFFE,E000), (FFFE,E0DD) read as "<L"
# Raw identifiers the worker pseudonymises; never logged, never in facts or messages.


@dataclass(frozen=True)
class _Pixels:
    """The pixel data element: its keyword, VR (None when implicit) and encoded value."""

    keyword: str
    vr: str | None
    value: bytes | memoryview


@dataclass(frozen=True)
class _Geometry:
    """The Image Pixel module (PS3.3 C.7.6.3) values decoding needs, named as pydicom's options."""

    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int


def decode_dicom(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode a single-frame DICOM image to stored values plus an :class:`IntensityTransform`.

    Parameters
    ----------
    data : bytes
        A DICOM file: PS3.10 (preamble + ``DICM``), or without preamble.
    limits : ImageLimits
        Checked against Rows and Columns before any pixel is decoded.

    Returns
    -------
    DecodedImage
        ``pixels`` is ``(Rows, Columns)`` for MONOCHROME1/2 (uint8, uint16, int16 sign-extended
        from Bits Stored, float32 or float64) or ``(Rows, Columns, 3)`` RGB for RGB, YBR and
        PALETTE COLOR. The array may be a read-only view of ``data``.

    Raises
    ------
    ImageError
        With a ``DICOM_*``, ``TRUNCATED_FILE``, geometry or sample-type code; messages never
        carry header values that could be PHI.
    """
    if data.startswith(DICOM_PREFIX):
        # pydicom reads a preamble + "DICM" or the File Meta group at offset 0, not "DICM" there.
        data = data[len(DICOM_PREFIX) :]
    with _quiet_pydicom():
        _refuse_deflate_bombs(data, limits)
        stream = BytesIO(data)
        header = _read_header(stream)
        syntax = _transfer_syntax(header)
        pixels = _locate_pixels(data, stream.tell(), header, syntax)
        geometry = _geometry(header)
        check_dimensions(geometry.columns, geometry.rows, limits)
        _check_frames(header)
        _check_sample_type(pixels.keyword, geometry)
        excess = _check_length(pixels, geometry, syntax)
        stored = _decode_pixels(pixels, geometry, syntax)
        stored, intensity, tables = intensity_rules(
            stored,
            header,
            geometry.photometric_interpretation,
            geometry.samples_per_pixel,
            geometry.bits_stored,
        )
        facts = image_facts(header, asdict(geometry), syntax, tables, excess)
        identifiers = raw_identifiers(header)
    return DecodedImage(
        pixels=stored,
        format=ImageFormat.DICOM,
        width=geometry.columns,
        height=geometry.rows,
        intensity=intensity,
        facts=facts,
        identifiers=identifiers,
    )


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's value validation while decoding.

    pydicom warns *and logs* an invalid value together with the value itself (a malformed
    PatientID or UID would reach the logs), so validation is off while we read. This swaps a
    process-wide setting: fine in prefork workers, not meant for concurrent threads.
    """
    mode = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        config.settings.reading_validation_mode = mode


def _refuse_deflate_bombs(data: bytes, limits: ImageLimits) -> None:
    """pydicom inflates a deflated data set whole, before any header check: bound it first."""
    stream = BytesIO(data)
    try:
        read_preamble(stream, force=True)
        # Private, but what pydicom.pixels itself uses to read the File Meta alone.
        syntax = _read_file_meta_info(stream).get("TransferSyntaxUID")
    except Exception:  # a broken File Meta is reported by the full read that follows
        return
    if syntax == uid.DeflatedExplicitVRLittleEndian:
        # Room for the largest image the limits allow (3 samples of 16 bits) and its header.
        check_inflated_size(memoryview(data)[stream.tell() :], limits.max_pixels * 6 + 2**24)


def _read_header(stream: BytesIO) -> Dataset:
    try:
        return dcmread(stream, force=True, stop_before_pixels=True)
    except EOFError as exc:
        raise ImageError(ErrorCode.TRUNCATED_FILE, "the file ends inside the header") from exc
    except Exception as exc:  # pydicom raises many types on malformed headers
        raise ImageError(
            ErrorCode.DICOM_INVALID, f"the header cannot be parsed ({type(exc).__name__})"
        ) from exc


def _transfer_syntax(header: Dataset) -> uid.UID:
    """The File Meta's Transfer Syntax UID (PS3.10 7.1), checked against our decoders."""
    meta = header.file_meta
    if len(meta) == 0 and len(header) == 0:
        raise ImageError(ErrorCode.TRUNCATED_FILE, "nothing follows the DICOM prefix")
    if len(meta) == 0:
        raise ImageError(
            ErrorCode.DICOM_INVALID, "no File Meta Information, transfer syntax unknown"
        )
    syntax = meta.get("TransferSyntaxUID")
    if not syntax:
        if len(header) == 0:  # nothing after the File Meta: the file ends inside it
            raise ImageError(ErrorCode.TRUNCATED_FILE, "the file ends inside the File Meta")
        raise ImageError(
            ErrorCode.DICOM_INVALID, "the File Meta Information has no Transfer Syntax UID"
        )
    syntax = uid.UID(str(syntax))
    package = DECODER_PACKAGES.get(syntax)
    if package is None:
        # Only registered DICOM UIDs are named: anything else is not ours to print.
        name = "a private transfer syntax" if syntax.is_private else f"{syntax.name} ({syntax})"
        raise ImageError(ErrorCode.DICOM_UNSUPPORTED_TRANSFER_SYNTAX, f"{name} is not supported")
    if not get_decoder(syntax).is_available:
        raise ImageError(
            ErrorCode.DICOM_DECODER_MISSING,
            f"decoding {syntax.name} needs the '{package}' package, which is not installed",
            package=package,
        )
    return syntax


def _locate_pixels(data: bytes, offset: int, header: Dataset, syntax: uid.UID) -> _Pixels:
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
        return _Pixels(keyword, vr, data[start:])
    if syntax.is_encapsulated:
        raise ImageError(
            ErrorCode.DICOM_INVALID, "compressed Pixel Data must be encapsulated (PS3.5 A.4)"
        )
    if start + length > len(data):
        raise ImageError(
            ErrorCode.TRUNCATED_FILE,
            f"Pixel Data declares {length} bytes, the file holds {len(data) - start}",
        )
    return _Pixels(keyword, vr, memoryview(data)[start : start + length])


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
    keyword = _PIXEL_KEYWORDS.get(group << 16 | element)
    if keyword is None:
        raise ImageError(ErrorCode.DICOM_INVALID, "the header cannot be read to its end")
    return keyword, head[4:6].decode("latin-1") if explicit else None, length, offset + size


def _inflated_pixels(data: bytes) -> _Pixels:
    # Offsets in a deflated file (PS3.5 A.5) refer to the inflated stream: read it all.
    dataset = dcmread(BytesIO(data), force=True)
    for tag, keyword in _PIXEL_KEYWORDS.items():
        raw = dataset.get_item(tag, keep_deferred=True)
        if raw is None:
            continue
        if _is_cut_short(raw):
            raise ImageError(ErrorCode.TRUNCATED_FILE, "the inflated Pixel Data is truncated")
        element = dataset[tag]
        return _Pixels(keyword, element.VR, element.value)
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


def _geometry(header: Dataset) -> _Geometry:
    photometric = str(header.get("PhotometricInterpretation", "")).strip()
    samples = _required_int(header, "SamplesPerPixel")
    if photometric not in _PHOTOMETRIC_SAMPLES:
        known = photometric in _OTHER_PHOTOMETRICS
        raise ImageError(
            ErrorCode.DICOM_UNSUPPORTED_PHOTOMETRIC,
            f"photometric interpretation {photometric if known else '(unrecognised)'} "
            "is not supported",
        )
    if samples != _PHOTOMETRIC_SAMPLES[photometric]:
        raise ImageError(ErrorCode.DICOM_INVALID, f"{photometric} with {samples} samples per pixel")
    return _Geometry(
        rows=_required_int(header, "Rows"),
        columns=_required_int(header, "Columns"),
        samples_per_pixel=samples,
        photometric_interpretation=photometric,
        bits_allocated=_required_int(header, "BitsAllocated"),
        bits_stored=_required_int(header, "BitsStored"),
        pixel_representation=_required_int(header, "PixelRepresentation"),
        planar_configuration=int(header.get("PlanarConfiguration", 0) or 0),
    )


def _required_int(header: Dataset, keyword: str) -> int:
    try:
        value = int(header[keyword].value)
    except Exception as exc:  # missing, empty or not a number
        raise ImageError(ErrorCode.DICOM_INVALID, f"{keyword} is missing or invalid") from exc
    if value < 0:
        raise ImageError(ErrorCode.DICOM_INVALID, f"{keyword} is negative")
    return value


def _check_frames(header: Dataset) -> None:
    try:
        frames = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as exc:
        raise ImageError(ErrorCode.DICOM_INVALID, "NumberOfFrames is not a number") from exc
    if frames > 1:
        raise ImageError(
            ErrorCode.DICOM_MULTIFRAME,
            f"the file holds {frames} frames, one is expected",
            frames=frames,
        )


def _check_sample_type(keyword: str, geometry: _Geometry) -> None:
    """Bits Allocated / Stored / Pixel Representation (PS3.5 8.1.1, PS3.3 C.7.6.3.1)."""
    if keyword != "PixelData":
        return  # Float and Double Float Pixel Data are float32 and float64 by definition
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


def _check_length(pixels: _Pixels, geometry: _Geometry, syntax: uid.UID) -> int:
    """Check native pixel data holds Rows x Columns x Samples x Bits; return excess bytes.

    PS3.5 8.1.1 pads odd lengths with one byte. Short data is a mismatch; so is a surplus of
    a whole frame or more (smaller Rows/Columns than the real image, or undeclared frames). A
    smaller surplus is trailing padding, seen in the wild and ignored as pydicom does.
    """
    if syntax.is_encapsulated:
        _check_encapsulated(pixels.value, geometry)
        return 0
    bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(
        pixels.keyword, geometry.bits_allocated
    )
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


def _check_encapsulated(value: bytes | memoryview, geometry: _Geometry) -> None:
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


def _decode_pixels(pixels: _Pixels, geometry: _Geometry, syntax: uid.UID) -> np.ndarray:
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


def _clear_unused_bits(array: np.ndarray, geometry: _Geometry) -> np.ndarray:
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
