"""Format sniffing by content, and the geometry check made on headers before decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_fragments

from pipeline.errors import ErrorCode, ImageError
from pipeline.guards import check_dimensions, codestream_size
from pipeline.image import ImageFormat
from pipeline.limits import ImageLimits
from pipeline.sniff import sniff_format


def _testdata(name: str) -> bytes:
    with open(get_testdata_file(name, download=False), "rb") as f:
        return f.read()


def _raster(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def _bare_dataset(implicit: bool, little: bool) -> bytes:
    """MR_small's data set written with no preamble and no File Meta Information."""
    dataset = dcmread(get_testdata_file("MR_small.dcm", download=False))
    buffer = io.BytesIO()
    del dataset.file_meta
    dataset.save_as(buffer, implicit_vr=implicit, little_endian=little)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("png", lambda: _raster("PNG"), ImageFormat.PNG),
        ("jpeg", lambda: _raster("JPEG"), ImageFormat.JPEG),
        ("dicom part 10", lambda: _testdata("CT_small.dcm"), ImageFormat.DICOM),
        ("dicom without preamble", lambda: _testdata("CT_small.dcm")[128:], ImageFormat.DICOM),
        ("dicom from file meta", lambda: _testdata("CT_small.dcm")[132:], ImageFormat.DICOM),
        ("dicom head only", lambda: _testdata("CT_small.dcm")[:140], ImageFormat.DICOM),
        ("no_meta.dcm", lambda: _testdata("no_meta.dcm"), ImageFormat.DICOM),
        ("bare explicit LE", lambda: _testdata("ExplVR_LitEndNoMeta.dcm"), ImageFormat.DICOM),
        ("bare explicit BE", lambda: _testdata("ExplVR_BigEndNoMeta.dcm"), ImageFormat.DICOM),
        ("bare implicit LE", lambda: _bare_dataset(True, True), ImageFormat.DICOM),
    ],
)
def test_sniff_recognises_formats_by_content(name, make, expected):
    assert sniff_format(make()) is expected


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_FILE),
        (b"\x89", ErrorCode.UNKNOWN_FORMAT),
        (b"GIF89a" + bytes(200), ErrorCode.UNKNOWN_FORMAT),
        (b"%PDF-1.7\n" + bytes(200), ErrorCode.UNKNOWN_FORMAT),
        (bytes(128) + b"DICX" + bytes(64), ErrorCode.UNKNOWN_FORMAT),
        (bytes(300), ErrorCode.UNKNOWN_FORMAT),
        (b"\x89PNG\r\n", ErrorCode.UNKNOWN_FORMAT),  # a signature cut short
        (b"\x08\x00\x05\x00\x0b\x00\x00\x00" + bytes(200), ErrorCode.UNKNOWN_FORMAT),  # odd length
    ],
)
def test_sniff_rejects_what_it_does_not_know(data, code):
    with pytest.raises(ImageError) as caught:
        sniff_format(data)
    assert caught.value.code is code


def test_sniff_ignores_a_misleading_extension_in_the_content():
    # A PNG whose first bytes are followed by "DICM" at 128 is still a PNG: PNG is checked first.
    data = bytearray(_raster("PNG"))
    data[128:132] = b"DICM"
    assert sniff_format(bytes(data)) is ImageFormat.PNG


LIMITS = ImageLimits(min_side=64, max_side=1000, max_pixels=500_000)


@pytest.mark.parametrize(
    ("width", "height", "code"),
    [
        (64, 64, None),
        (1000, 500, None),  # both limits met exactly
        (63, 100, ErrorCode.IMAGE_TOO_SMALL),
        (100, 63, ErrorCode.IMAGE_TOO_SMALL),
        (1001, 100, ErrorCode.IMAGE_TOO_LARGE),
        (1000, 501, ErrorCode.DECOMPRESSION_BOMB),
        (100_000, 100_000, ErrorCode.DECOMPRESSION_BOMB),  # the pixel count is checked first
    ],
)
def test_check_dimensions(width, height, code):
    if code is None:
        check_dimensions(width, height, LIMITS)
        return
    with pytest.raises(ImageError) as caught:
        check_dimensions(width, height, LIMITS)
    assert caught.value.code is code
    assert caught.value.details["width"] == width
    assert caught.value.details["height"] == height


def _first_fragment(name: str) -> bytes:
    value = dcmread(get_testdata_file(name, download=False)).PixelData
    return next(generate_fragments(value[8 + int.from_bytes(value[4:8], "little") :]))


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (lambda: _raster("JPEG"), (8, 8)),
        (lambda: _first_fragment("JPGExtended.dcm"), (256, 1024)),
        (lambda: _first_fragment("MR_small_jpeg_ls_lossless.dcm"), (64, 64)),
        (lambda: _first_fragment("MR_small_jp2klossless.dcm"), (64, 64)),
        (lambda: _first_fragment("MR_small_RLE.dcm"), None),  # RLE declares no size
        (lambda: _raster("PNG"), None),
        (lambda: b"\xff\xd8\xff\xe0\x00", None),  # cut inside the first segment
    ],
)
def test_codestream_size(make, size):
    assert codestream_size(make()) == size
