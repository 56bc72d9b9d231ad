"""Decode one DICOM image (a PS3.10 file) into its stored values and its intensity rules.

The header is parsed once, stopping before the pixel data (``stop_before_pixels``); every check
that can fail (transfer syntax, decoder, geometry, frames, photometric, sample type, length) runs
on it before a pixel is decoded. Uncompressed pixel data is then decoded from a zero-copy view of
the input bytes, so a 2048 x 2048 16-bit image costs one copy at most (to clear unused bits).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from io import BytesIO

import numpy as np
from pydicom import config, dcmread, uid
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset, read_preamble

from pipeline.dicom_codec import decode_pixels, decoder_for, register_fallback
from pipeline.dicom_facts import image_facts, raw_identifiers
from pipeline.dicom_intensity import intensity_rules
from pipeline.dicom_pixels import (
    FLOAT_BITS,
    Geometry,
    check_length,
    check_sample_type,
    locate_pixels,
)
from pipeline.errors import ErrorCode, ImageError
from pipeline.guards import check_dimensions, check_inflated_size
from pipeline.image import DecodedImage, ImageFormat
from pipeline.j2k_reduced import REDUCIBLE, decode_reduced
from pipeline.limits import ImageLimits
from pipeline.sniff import DICOM_PREFIX

# Photometric Interpretation (PS3.3 C.7.6.3.1.2) -> Samples per Pixel. YBR is returned as RGB.
_PHOTOMETRIC_SAMPLES = dict.fromkeys(("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"), 1)
_PHOTOMETRIC_SAMPLES |= dict.fromkeys(("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"), 3)
_OTHER_PHOTOMETRICS = {"YBR_PARTIAL_420", "YBR_PARTIAL_422", "ARGB", "CMYK", "HSV"}
# Once per process, before the first image: pydicom's decoders are process-wide singletons.
register_fallback()


def decode_dicom(
    data: bytes, limits: ImageLimits, *, draft_size: tuple[int, int] | None = None
) -> DecodedImage:
    """Decode a single-frame DICOM image to stored values plus an :class:`IntensityTransform`.

    Parameters
    ----------
    data : bytes
        A DICOM file: PS3.10 (preamble + ``DICM``), or without preamble.
    limits : ImageLimits
        Checked against Rows and Columns before any pixel is decoded.
    draft_size : (int, int), optional
        ``(rows, columns)`` the caller will reduce to. Given, a JPEG 2000 frame is decoded at
        the coarsest resolution level still this large (see :mod:`pipeline.j2k_reduced`); only
        for models whose card allows it.

    Returns
    -------
    DecodedImage
        ``pixels`` is ``(Rows, Columns)`` for MONOCHROME1/2 (uint8, uint16, int16 sign-extended
        from Bits Stored, float32 or float64) or ``(Rows, Columns, 3)`` RGB for RGB, YBR and
        PALETTE COLOR; smaller for a reduced JPEG 2000 frame. The array may be a read-only view
        of ``data``.

    Raises
    ------
    ImageError
        With a ``DICOM_*``, ``TRUNCATED_FILE``, geometry or sample-type code; messages never
        carry header values that could be PHI.
    """
    with _quiet_pydicom():
        stored = read_stored(data, limits, draft_size=draft_size)
        geometry = stored.geometry
        pixels, intensity, tables = intensity_rules(
            stored.pixels,
            stored.header,
            geometry.photometric_interpretation,
            geometry.samples_per_pixel,
            geometry.bits_stored,
            little_endian=stored.syntax.is_little_endian,
        )
        facts = image_facts(stored.header, asdict(geometry), stored.syntax, tables, stored.excess)
        identifiers = raw_identifiers(stored.header)
    return DecodedImage(
        pixels=pixels,
        format=ImageFormat.DICOM,
        width=geometry.columns,
        height=geometry.rows,
        intensity=intensity,
        facts=facts,
        identifiers=identifiers,
    )


@dataclass(frozen=True)
class StoredImage:
    """A decoded frame's stored values, before any lookup table, and what they came from.

    ``pixels`` is as :func:`decode_dicom` describes, except that PALETTE COLOR is still the
    ``(Rows, Columns)`` indices and no Modality or VOI LUT has been applied.
    """

    pixels: np.ndarray
    header: Dataset
    geometry: Geometry
    syntax: uid.UID
    excess: int  # bytes of padding after native pixel data


def read_stored(
    data: bytes, limits: ImageLimits, *, draft_size: tuple[int, int] | None = None
) -> StoredImage:
    """Check and decode a DICOM file's one frame to its stored values (no LUT applied).

    ``draft_size`` as for :func:`decode_dicom`.

    Raises
    ------
    ImageError
        As :func:`decode_dicom`.
    """
    if data.startswith(DICOM_PREFIX):
        # pydicom reads a preamble + "DICM" or the File Meta group at offset 0, not "DICM" there.
        data = data[len(DICOM_PREFIX) :]
    with _quiet_pydicom():
        _refuse_deflate_bombs(data, limits)
        stream = BytesIO(data)
        header = _read_header(stream)
        syntax = _transfer_syntax(header)
        element = locate_pixels(data, stream.tell(), header, syntax)
        geometry = _geometry(header, element.keyword)
        check_dimensions(geometry.columns, geometry.rows, limits)
        _check_frames(header)
        check_sample_type(element.keyword, geometry)
        excess = check_length(element, geometry, syntax)
        pixels = None
        if draft_size is not None and syntax in REDUCIBLE:
            pixels = decode_reduced(element.value, geometry, draft_size)
        if pixels is None:
            pixels = decode_pixels(element, geometry, syntax)
    return StoredImage(pixels, header, geometry, syntax, excess)


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
        # The File Meta group alone: always explicit VR little endian (PS3.10 7.1).
        meta = read_dataset(stream, False, True, stop_when=lambda tag, *_: tag.group != 2)
        syntax = meta.get("TransferSyntaxUID")
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
    decoder_for(syntax)
    return syntax


def _geometry(header: Dataset, keyword: str) -> Geometry:
    """The Image Pixel module; the float image module has no Bits Stored or Pixel
    Representation (PS3.3 C.7.6.24): its samples are IEEE floats of Bits Allocated bits."""
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
    floats = FLOAT_BITS.get(keyword)
    return Geometry(
        rows=_required_int(header, "Rows"),
        columns=_required_int(header, "Columns"),
        samples_per_pixel=samples,
        photometric_interpretation=photometric,
        bits_allocated=_required_int(header, "BitsAllocated"),
        bits_stored=floats or _required_int(header, "BitsStored"),
        pixel_representation=0 if floats else _required_int(header, "PixelRepresentation"),
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
