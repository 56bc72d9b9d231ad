"""Golden-reference tests on the real DICOM files shipped with pydicom, plus pixel semantics.

The expected stored values were read once from the files and are hard-coded here (the MR_small
ones are also pydicom's own references): a change in how we read pixels must show up as a
failure, not as a silently updated expectation.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from pipeline.decode import decode_image
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage, ImageFormat, Window
from pipeline.limits import ImageLimits

ANY_SIZE = ImageLimits(min_side=1)  # pydicom's test files are small (16 x 16 to 512 x 512)
CR_WINDOW = Window(center=1600.0, width=2800.0, function="LINEAR")


def read_testdata(name: str) -> bytes:
    with open(get_testdata_file(name, download=False), "rb") as f:
        return f.read()


def decode_testdata(name: str) -> DecodedImage:
    return decode_image(read_testdata(name), ANY_SIZE)


def dicom_file(
    pixels: np.ndarray | None,
    *,
    syntax: str = ExplicitVRLittleEndian,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    pixel_data: bytes | None = None,
    **elements: Any,
) -> bytes:
    """A PS3.10 file around ``pixels``.

    ``elements`` set attributes by keyword: ``None`` deletes one, a ``(VR, value)`` tuple
    writes it with that VR (e.g. text where a number belongs), anything else is assigned.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid values are intended by some callers
        return _write(_dataset(pixels, syntax, photometric, bits_stored, pixel_data, elements))


def _dataset(
    pixels: np.ndarray | None,
    syntax: str,
    photometric: str,
    bits_stored: int | None,
    pixel_data: bytes | None,
    elements: dict[str, Any],
) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.PatientID = "TEST-0001"
    dataset.Modality = "CR"
    if pixels is not None:
        bits = 8 * pixels.dtype.itemsize
        dataset.Rows, dataset.Columns = pixels.shape[:2]
        dataset.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
        dataset.PhotometricInterpretation = photometric
        dataset.BitsAllocated = bits
        dataset.BitsStored = bits_stored or bits
        dataset.HighBit = (bits_stored or bits) - 1
        dataset.PixelRepresentation = int(pixels.dtype.kind == "i")
        if pixels.ndim == 3:
            dataset.PlanarConfiguration = 0
        dataset.PixelData = pixel_data if pixel_data is not None else pixels.tobytes()
    for keyword, value in elements.items():
        if value is None:
            delattr(dataset, keyword)
        elif isinstance(value, tuple):
            dataset.add_new(keyword, *value)
        else:
            setattr(dataset, keyword, value)
    return dataset


def _write(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    # pydicom cannot derive the encoding from a private syntax: say it (explicit VR LE).
    private = UID(dataset.file_meta.TransferSyntaxUID).is_private
    encoding = {"implicit_vr": False, "little_endian": True} if private else {}
    dataset.save_as(buffer, enforce_file_format=True, **encoding)
    return buffer.getvalue()


# name, shape, dtype, (slope, intercept), window, invert, {(row, column): stored value}
GOLDEN = [
    ("6154", (16, 16), np.uint16, (0.684, 200.0), CR_WINDOW, True,
     {(0, 0): 1994, (3, 5): 2569, (8, 8): 2515, (15, 15): 2418, (12, 2): 2652}),
    ("6247", (16, 16), np.uint16, (0.684, 200.0), CR_WINDOW, True,
     {(0, 0): 1488, (3, 5): 1523, (8, 8): 1624, (15, 15): 1477, (12, 2): 1391}),
    ("6278", (16, 16), np.uint16, (0.684, 200.0), CR_WINDOW, True,
     {(0, 0): 2551, (3, 5): 2551, (8, 8): 2343, (15, 15): 2265, (12, 2): 2229}),
    ("CT_small.dcm", (128, 128), np.int16, (1.0, -1024.0), None, False,
     {(0, 0): 175, (0, 1): 180, (0, 2): 166, (64, 64): 1928, (10, 100): 1227, (127, 127): 909}),
    ("MR_small.dcm", (64, 64), np.int16, (1.0, 0.0), Window(600.0, 1600.0), False,
     {(0, 31): 422, (0, 32): 319, (0, 33): 361, (31, 0): 366, (31, 1): 363, (31, 2): 322,
      (63, 61): 1369, (63, 62): 1129, (63, 63): 862}),
    ("image_dfl.dcm", (512, 512), np.uint8, (1.0, 0.0), None, False,
     {(0, 0): 213, (256, 256): 65, (100, 400): 70, (511, 511): 188}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "rescale", "window", "invert", "values"),
    GOLDEN,
    ids=[row[0] for row in GOLDEN],
)
def test_golden_files(name, shape, dtype, rescale, window, invert, values):
    image = decode_testdata(name)
    assert image.format is ImageFormat.DICOM
    assert image.pixels.shape == shape
    assert image.pixels.dtype == dtype
    assert (image.height, image.width) == shape
    assert (image.intensity.slope, image.intensity.intercept) == pytest.approx(rescale)
    assert image.intensity.window == window
    assert image.intensity.invert is invert
    assert image.intensity.value_range is None  # grey DICOM: window or percentiles, never range
    assert {place: int(image.pixels[place]) for place in values} == values


def test_monochrome1_cr_facts():
    image = decode_testdata("6154")
    assert image.facts == {
        "transfer_syntax": "1.2.840.10008.1.2.1",
        "photometric": "MONOCHROME1",
        "bits_allocated": 16,
        "bits_stored": 12,
        "pixel_representation": 0,
        "samples_per_pixel": 1,
        "modality": "CR",
    }
    assert set(image.identifiers) == {"patient_id", "study_uid", "sop_uid"}


def test_ct_small_is_signed_and_matches_pydicom():
    image = decode_testdata("CT_small.dcm")
    reference = dcmread(get_testdata_file("CT_small.dcm", download=False)).pixel_array
    np.testing.assert_array_equal(image.pixels, reference)
    assert image.facts["pixel_representation"] == 1


MR_VARIANTS = [
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
]


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_mr_small_variants_decode_to_the_same_pixels(name):
    reference = decode_testdata("MR_small.dcm")
    image = decode_testdata(name)
    assert image.pixels.dtype == np.int16  # native byte order, even from big endian
    assert image.pixels.dtype.isnative
    np.testing.assert_array_equal(image.pixels, reference.pixels)
    assert image.intensity == reference.intensity


def test_padded_pixel_data_is_recorded_not_fatal():
    assert decode_testdata("MR_small_padded.dcm").facts["pixel_data_excess_bytes"] == 128


def test_deflated_file_decodes():
    # pydicom ships no MR_small_deflate.dcm; image_dfl.dcm is its Deflated Explicit VR LE file.
    image = decode_testdata("image_dfl.dcm")
    assert image.facts["transfer_syntax"] == "1.2.840.10008.1.2.1.99"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("MR_truncated.dcm", ErrorCode.TRUNCATED_FILE),
        ("no_meta.dcm", ErrorCode.DICOM_INVALID),
        ("ExplVR_LitEndNoMeta.dcm", ErrorCode.DICOM_INVALID),
        ("meta_missing_tsyntax.dcm", ErrorCode.DICOM_INVALID),
        ("SC_rgb_rle_2frame.dcm", ErrorCode.DICOM_MULTIFRAME),
        ("rtdose_1frame.dcm", ErrorCode.UNSUPPORTED_SAMPLE_TYPE),  # 32-bit unsigned
        ("rtplan.dcm", ErrorCode.DICOM_NO_PIXEL_DATA),
        ("rtplan_truncated.dcm", ErrorCode.TRUNCATED_FILE),
    ],
)
def test_failing_files_get_specific_codes(name, code):
    with pytest.raises(ImageError) as caught:
        decode_testdata(name)
    assert caught.value.code is code


def test_no_meta_message():
    with pytest.raises(ImageError) as caught:
        decode_testdata("no_meta.dcm")
    assert caught.value.message == "no File Meta Information, transfer syntax unknown"


RGB_REFERENCE = "SC_rgb_rle.dcm"


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [
        ("SC_rgb_rle.dcm", 0),
        ("SC_rgb_gdcm_KY.dcm", 1),  # same picture, written by another toolkit
        ("SC_ybr_full_422_uncompressed.dcm", 6),  # YBR_FULL_422 -> RGB, chroma subsampled
        ("SC_rgb_jpeg_dcmtk.dcm", 6),  # lossy JPEG, YBR_FULL
    ],
)
def test_colour_files_decode_to_rgb(name, tolerance):
    image = decode_testdata(name)
    reference = decode_testdata(RGB_REFERENCE).pixels.astype(int)
    assert image.pixels.shape == (100, 100, 3)
    assert image.pixels.dtype == np.uint8
    assert np.abs(image.pixels.astype(int) - reference).max() <= tolerance
    assert image.intensity.value_range == (0.0, 255.0)
    assert image.intensity.window is None


def test_rgb_golden_values():
    pixels = decode_testdata("SC_rgb_rle.dcm").pixels
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[50, 50].tolist() == [128, 128, 255]
    assert pixels[99, 99].tolist() == [255, 255, 255]
    small = decode_testdata("SC_rgb_small_odd.dcm").pixels
    assert small.shape == (3, 3, 3)
    assert small[0, 0].tolist() == [166, 141, 52]
    assert small[1, 1].tolist() == [63, 87, 176]


def test_palette_color_becomes_rgb():
    image = decode_testdata("examples_palette.dcm")
    assert image.pixels.shape == (350, 800, 3)
    assert image.pixels.dtype == np.uint16  # 16-bit palette entries
    assert image.pixels[0, 0].tolist() == [9472, 15872, 24064]
    assert image.pixels[175, 400].tolist() == [256, 256, 256]
    assert image.intensity.value_range == (0.0, 65535.0)
    assert image.facts["lookup_tables"] == "palette"


@pytest.mark.parametrize("strip", [128, 132], ids=["starts with DICM", "starts with group 2"])
def test_dicom_without_preamble(strip):
    data = read_testdata("MR_small.dcm")
    image = decode_image(data[strip:], ANY_SIZE)
    np.testing.assert_array_equal(image.pixels, decode_image(data, ANY_SIZE).pixels)


@pytest.mark.parametrize("name", ["CT_small.dcm", "6154"], ids=["16 of 16 bits", "12 of 16"])
def test_uncompressed_pixels_are_a_view_of_the_input(name):
    # Clean unused bits need no correction, so a 2048 x 2048 image costs no 8 MB copy either.
    data = read_testdata(name)
    image = decode_image(data, ANY_SIZE)
    assert np.shares_memory(image.pixels, np.frombuffer(data, np.uint8))


# Pixel semantics on synthetic files ----------------------------------------------------------


def test_signed_samples_are_sign_extended_from_bits_stored():
    # 12-bit two's complement in 16-bit words with the unused high bits left at zero:
    # 0x0FFB is -5 and 0x0800 is -2048 (PS3.5 8.1.1), 0x07FF is 2047.
    words = np.array([[0x0FFB, 0x0800, 0x07FF, 0x0001]] * 4, dtype="<u2")
    pixels = np.tile(words, (16, 16)).view(np.int16)
    image = decode_image(dicom_file(pixels, bits_stored=12), ANY_SIZE)
    assert image.pixels.dtype == np.int16
    assert image.pixels[0, :4].tolist() == [-5, -2048, 2047, 1]


def test_unsigned_samples_ignore_unused_high_bits():
    # An overlay or garbage in bits 12-15 must not change a 12-bit value.
    pixels = np.full((64, 64), 0xF123, dtype=np.uint16)
    image = decode_image(dicom_file(pixels, bits_stored=12))
    assert int(image.pixels.max()) == 0x123


def lut_item(descriptor: list[int], data: list[int]) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUT Descriptor (US or SS: say which)
    item.add_new(0x00283006, "US", data)  # LUT Data (US or OW)
    return item


def test_modality_lut_table_is_applied_at_decode():
    pixels = (np.arange(64 * 64) % 4).astype(np.uint16).reshape(64, 64)
    table = lut_item([4, 0, 16], [0, 1000, 2000, 65535])  # 8 or 16 bits (PS3.3 C.11.1.1.1)
    image = decode_image(dicom_file(pixels, ModalityLUTSequence=[table]))
    assert image.pixels[0, :4].tolist() == [0, 1000, 2000, 65535]
    assert (image.intensity.slope, image.intensity.intercept) == (1.0, 0.0)
    # No VOI in the file: a window spanning the table's 16-bit output.
    assert image.intensity.window == Window(32767.5, 65535.0, "LINEAR_EXACT")
    assert image.facts["lookup_tables"] == "modality"


def test_modality_lut_keeps_the_files_window():
    pixels = np.zeros((64, 64), np.uint16)
    table = lut_item([4, 0, 16], [0, 1000, 2000, 65535])
    data = dicom_file(pixels, ModalityLUTSequence=[table], WindowCenter=1000, WindowWidth=500)
    assert decode_image(data).intensity.window == Window(1000.0, 500.0)


def test_voi_lut_table_is_applied_after_rescale():
    pixels = (np.arange(64 * 64) % 4).astype(np.uint16).reshape(64, 64)
    table = lut_item([4, 10, 8], [0, 85, 170, 255])  # first mapped input value is 10
    data = dicom_file(pixels, RescaleSlope=1, RescaleIntercept=10, VOILUTSequence=[table])
    image = decode_image(data)
    assert image.pixels[0, :4].tolist() == [0, 85, 170, 255]
    assert image.intensity.window == Window(127.5, 255.0, "LINEAR_EXACT")
    assert (image.intensity.slope, image.intensity.intercept) == (1.0, 0.0)


def test_first_window_and_voi_lut_function():
    pixels = np.zeros((64, 64), np.uint16)
    data = dicom_file(
        pixels, WindowCenter=[40, 400], WindowWidth=[400, 2000], VOILUTFunction="SIGMOID"
    )
    assert decode_image(data).intensity.window == Window(40.0, 400.0, "SIGMOID")


@pytest.mark.parametrize(
    "elements",
    [
        {"WindowCenter": 40},  # width missing
        {"WindowCenter": 40, "WindowWidth": 0},
        {"WindowCenter": 40, "WindowWidth": 0.5},  # LINEAR needs >= 1 (PS3.3 C.11.2.1.2.1)
    ],
)
def test_invalid_window_falls_back_to_percentiles(elements):
    data = dicom_file(np.zeros((64, 64), np.uint16), **elements)
    assert decode_image(data).intensity.window is None


def test_monochrome1_is_flagged_not_inverted():
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    image = decode_image(dicom_file(pixels, photometric="MONOCHROME1"))
    assert image.intensity.invert is True
    np.testing.assert_array_equal(image.pixels, pixels)


def test_rle_encapsulated_file_built_here():
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    dataset = dcmread(io.BytesIO(dicom_file(pixels)))
    dataset.compress("1.2.840.10008.1.2.5")  # RLE Lossless, pydicom's own encoder
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    np.testing.assert_array_equal(decode_image(buffer.getvalue()).pixels, pixels)


def test_corrupt_rle_fragment():
    data = dicom_file(
        np.zeros((64, 64), np.uint8),
        syntax="1.2.840.10008.1.2.5",
        pixel_data=encapsulate([b"\x01\x00\x00\x00" + bytes(60)]),
    )
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert caught.value.code is ErrorCode.CORRUPT_IMAGE


def test_identifiers_are_kept_apart_from_facts():
    data = dicom_file(np.zeros((64, 64), np.uint8), PatientID="P-42", PatientName="Doe^Jane")
    image = decode_image(data)
    assert image.identifiers["patient_id"] == "P-42"
    assert set(image.identifiers) == {"patient_id", "study_uid", "sop_uid"}
    assert "P-42" not in repr(image)  # identifiers are excluded from the repr
    assert all("P-42" not in str(value) for value in image.facts.values())
