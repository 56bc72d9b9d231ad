"""Pixel data checks: float images (no Bits Stored), and corrupt JPEG 2000 frame headers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pipeline.decode import decode_image
from pipeline.errors import ErrorCode, ImageError
from pipeline.guards import codestream_size
from tests.unit.pipeline.test_dicom_golden import ANY_SIZE, dicom_file, read_testdata

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def float_image(keyword: str, dtype: type, bits: int | None = None) -> tuple[np.ndarray, bytes]:
    """A float image module file (PS3.3 C.7.6.24): no Bits Stored, no Pixel Representation."""
    values = (np.arange(64 * 80, dtype=dtype).reshape(64, 80) - 1000.5) / 7
    data = dicom_file(
        None,
        SOPClassUID=PARAMETRIC_MAP,
        Rows=64,
        Columns=80,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=bits or 8 * np.dtype(dtype).itemsize,
        **{keyword: values.tobytes()},
    )
    return values, data


@pytest.mark.parametrize(
    ("keyword", "dtype"),
    [("FloatPixelData", np.float32), ("DoubleFloatPixelData", np.float64)],
)
def test_float_pixel_data_without_bits_stored_decodes(keyword, dtype):
    values, data = float_image(keyword, dtype)
    image = decode_image(data)
    assert image.pixels.dtype == dtype
    np.testing.assert_array_equal(image.pixels, values)
    assert image.facts["bits_stored"] == 8 * np.dtype(dtype).itemsize


def test_float_pixel_data_with_the_wrong_bits_allocated_is_invalid():
    _, data = float_image("FloatPixelData", np.float32, bits=16)
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert caught.value.code is ErrorCode.DICOM_INVALID


def j2k_with_siz(**fields: int) -> bytes:
    """MR_small_jp2klossless.dcm with SIZ fields (ISO 15444-1 A.5.1) overwritten."""
    data = bytearray(read_testdata("MR_small_jp2klossless.dcm"))
    siz = data.index(b"\xff\x4f\xff\x51") + 2
    offsets = {"Xsiz": 6, "Ysiz": 10, "XOsiz": 14, "XTsiz": 22, "Csiz": 38}
    for name, value in fields.items():
        at = siz + offsets[name]
        size = 2 if name == "Csiz" else 4
        data[at : at + size] = value.to_bytes(size, "big")
    return bytes(data)


@pytest.mark.parametrize(
    "fields",
    [
        {"Xsiz": 3722445056},  # the case seen: "3722445056 x 1024" reported as a mismatch
        {"XOsiz": 70},  # the image starts right of its own end
        {"XTsiz": 0},  # tiles of no width
        {"Csiz": 3},  # component count disagrees with the segment's length
    ],
    ids=["huge side", "offset past the end", "empty tiles", "component count"],
)
def test_corrupt_j2k_size_segment_is_a_corrupt_image(fields):
    with pytest.raises(ImageError) as caught:
        decode_image(j2k_with_siz(**fields), ANY_SIZE)
    assert caught.value.code is ErrorCode.CORRUPT_IMAGE
    assert "SIZ" in caught.value.message


def test_a_plausible_j2k_size_that_differs_stays_a_mismatch():
    # 128 x 64 is a frame DICOM could hold: the header and the codestream disagree.
    with pytest.raises(ImageError) as caught:
        decode_image(j2k_with_siz(Xsiz=128, XTsiz=128), ANY_SIZE)
    assert caught.value.code is ErrorCode.DICOM_PIXEL_DATA_MISMATCH


def test_valid_j2k_size_segment():
    data = read_testdata("MR_small_jp2klossless.dcm")
    start = data.index(b"\xff\x4f\xff\x51")
    assert codestream_size(data[start:]) == (64, 64)
    assert struct.unpack(">H", data[start + 4 : start + 6]) == (41,)  # one component
