"""Malformed inputs, each mapped to its specific ErrorCode; nothing but ImageError escapes.

Every input is generated here (Pillow, pydicom), so the table documents how each one is made.
"""

from __future__ import annotations

import collections
import io
import logging
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless

import pipeline.decode
from pipeline.decode import SAMPLE_TYPES, decode_image
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage, ImageFormat, IntensityTransform
from pipeline.limits import ImageLimits
from tests.unit.pipeline.test_dicom_golden import dicom_file, lut_item, read_testdata

GREY = np.tile(np.arange(128, dtype=np.uint8), (96, 1))  # 96 x 128
PIXELS16 = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)


def encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    (image.convert(mode) if mode else image).save(buffer, fmt)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR (with a correct CRC) declares another size."""
    data = bytearray(encode(GREY, "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts at 16 (PNG spec 11.2.2)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid small JPEG whose SOF0 frame header declares another size (ISO 10918-1 B.2.2)."""
    data = bytearray(encode(GREY, "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_with_corrupt_scan_header() -> bytes:
    data = bytearray(encode(GREY, "JPEG"))
    sos = data.index(b"\xff\xda")
    data[sos + 5] = 9  # the scan names component 9, which the frame does not have
    return bytes(data)


def cut_inside(data: bytes, marker: bytes, keep: int) -> bytes:
    return data[: data.index(marker) + keep]


def overwrite(data: bytes, offset: int, patch: bytes) -> bytes:
    return data[:offset] + patch + data[offset + len(patch) :]


def dicom_testdata_with(name: str, **elements: object) -> bytes:
    """A pydicom test file with some attributes changed, e.g. a lying Rows."""
    dataset = dcmread(io.BytesIO(read_testdata(name)))
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def dicom_without_file_meta() -> bytes:
    dataset = dcmread(io.BytesIO(dicom_file(PIXELS16)))
    del dataset.file_meta
    buffer = io.BytesIO()
    dataset.save_as(buffer, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


SMALL_FILES = ImageLimits(max_bytes=100)
DICOM = dicom_file(PIXELS16)
PNG = encode(GREY, "PNG")
JPEG = encode(GREY, "JPEG")

# name, input factory, limits, expected code
CASES: list[tuple[str, Callable[[], bytes], ImageLimits, ErrorCode]] = [
    ("empty", lambda: b"", ImageLimits(), ErrorCode.EMPTY_FILE),
    ("one byte", lambda: b"\xff", ImageLimits(), ErrorCode.UNKNOWN_FORMAT),
    ("wrong magic (GIF)", lambda: b"GIF89a" + bytes(500), ImageLimits(), ErrorCode.UNKNOWN_FORMAT),
    ("over max_bytes", lambda: PNG, SMALL_FILES, ErrorCode.FILE_TOO_LARGE),
    ("truncated PNG", lambda: PNG[: len(PNG) // 2], ImageLimits(), ErrorCode.TRUNCATED_FILE),
    ("truncated JPEG", lambda: JPEG[: len(JPEG) // 2], ImageLimits(), ErrorCode.TRUNCATED_FILE),
    ("random bytes after PNG signature",
     lambda: PNG[:8] + np.random.default_rng(1).bytes(400), ImageLimits(), ErrorCode.CORRUPT_IMAGE),
    ("JPEG with corrupt scan header", jpeg_with_corrupt_scan_header, ImageLimits(),
     ErrorCode.CORRUPT_IMAGE),
    ("PNG IHDR lying 100000 x 100000", lambda: png_declaring(100_000, 100_000), ImageLimits(),
     ErrorCode.DECOMPRESSION_BOMB),
    ("PNG IHDR lying 8000 x 100", lambda: png_declaring(8000, 100), ImageLimits(),
     ErrorCode.IMAGE_TOO_LARGE),
    ("JPEG SOF lying 60000 x 60000", lambda: jpeg_declaring(60_000, 60_000), ImageLimits(),
     ErrorCode.DECOMPRESSION_BOMB),
    ("tiny PNG", lambda: encode(GREY[:16, :16], "PNG"), ImageLimits(), ErrorCode.IMAGE_TOO_SMALL),
    ("CMYK JPEG", lambda: encode(GREY, "JPEG", "CMYK"), ImageLimits(),
     ErrorCode.UNSUPPORTED_COLOR_MODE),
    ("DICOM unsupported transfer syntax (MPEG2)",
     lambda: dicom_file(PIXELS16, syntax="1.2.840.10008.1.2.4.100",
                        pixel_data=encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])),
     ImageLimits(), ErrorCode.DICOM_UNSUPPORTED_TRANSFER_SYNTAX),
    ("DICOM private transfer syntax", lambda: dicom_file(PIXELS16, syntax="1.2.3.4.5.6"),
     ImageLimits(), ErrorCode.DICOM_UNSUPPORTED_TRANSFER_SYNTAX),
    ("DICOM no File Meta", dicom_without_file_meta, ImageLimits(), ErrorCode.DICOM_INVALID),
    ("DICOM File Meta without transfer syntax",
     lambda: DICOM.replace(b"\x02\x00\x10\x00UI", b"\x02\x00\x99\x00UI"), ImageLimits(),
     ErrorCode.DICOM_INVALID),
    ("DICOM Rows/Columns larger than Pixel Data",
     lambda: dicom_file(PIXELS16, Rows=128, Columns=128), ImageLimits(),
     ErrorCode.DICOM_PIXEL_DATA_MISMATCH),
    ("DICOM Rows/Columns smaller than Pixel Data",
     lambda: dicom_file(np.zeros((128, 128), np.uint16), Rows=64, Columns=64), ImageLimits(),
     ErrorCode.DICOM_PIXEL_DATA_MISMATCH),
    ("DICOM Rows/Columns lying huge", lambda: dicom_file(PIXELS16, Rows=60000, Columns=60000),
     ImageLimits(), ErrorCode.DECOMPRESSION_BOMB),
    ("DICOM small image", lambda: dicom_file(PIXELS16[:8, :8]), ImageLimits(),
     ErrorCode.IMAGE_TOO_SMALL),
    ("DICOM without Pixel Data", lambda: dicom_file(PIXELS16, PixelData=None), ImageLimits(),
     ErrorCode.DICOM_NO_PIXEL_DATA),
    ("DICOM without Rows", lambda: dicom_file(PIXELS16, Rows=None), ImageLimits(),
     ErrorCode.DICOM_INVALID),
    ("DICOM multi-frame",
     lambda: dicom_file(PIXELS16, NumberOfFrames=2, PixelData=PIXELS16.tobytes() * 2),
     ImageLimits(), ErrorCode.DICOM_MULTIFRAME),
    ("DICOM int32 samples", lambda: dicom_file(PIXELS16.astype(np.int32)), ImageLimits(),
     ErrorCode.UNSUPPORTED_SAMPLE_TYPE),
    ("DICOM YBR_PARTIAL_420", lambda: dicom_file(PIXELS16, photometric="YBR_PARTIAL_420"),
     ImageLimits(), ErrorCode.DICOM_UNSUPPORTED_PHOTOMETRIC),
    ("DICOM RGB with one sample", lambda: dicom_file(PIXELS16, photometric="RGB"),
     ImageLimits(), ErrorCode.DICOM_INVALID),
    ("DICOM BitsStored over BitsAllocated", lambda: dicom_file(PIXELS16, BitsStored=20),
     ImageLimits(), ErrorCode.DICOM_INVALID),
    ("DICOM Modality LUT of 12 bits (must be 8 or 16)",
     lambda: dicom_file(PIXELS16, ModalityLUTSequence=[lut_item([4, 0, 12], [0, 1, 2, 3])]),
     ImageLimits(), ErrorCode.DICOM_INVALID),
    ("DICOM truncated in the header", lambda: cut_inside(DICOM, b"TEST-0001", 4), ImageLimits(),
     ErrorCode.TRUNCATED_FILE),
    ("DICOM truncated in the File Meta", lambda: DICOM[:150], ImageLimits(),
     ErrorCode.TRUNCATED_FILE),
    ("DICOM truncated in the Pixel Data header",
     lambda: cut_inside(DICOM, b"\xe0\x7f\x10\x00", 6), ImageLimits(), ErrorCode.TRUNCATED_FILE),
    ("DICOM truncated in the Pixel Data", lambda: DICOM[:-1000], ImageLimits(),
     ErrorCode.TRUNCATED_FILE),
    ("DICOM prefix and nothing else", lambda: bytes(128) + b"DICM", ImageLimits(),
     ErrorCode.TRUNCATED_FILE),
    ("DICOM corrupt RLE fragment",
     lambda: dicom_file(PIXELS16, syntax="1.2.840.10008.1.2.5",
                        pixel_data=encapsulate([struct.pack("<I", 1) + bytes(60)])),
     ImageLimits(), ErrorCode.CORRUPT_IMAGE),
    ("DICOM deflate bomb", lambda: deflate_bomb(), ImageLimits(max_pixels=1 << 20),
     ErrorCode.DECOMPRESSION_BOMB),
    ("DICOM truncated in encapsulated Pixel Data",
     lambda: read_testdata("MR_small_jp2klossless.dcm")[:-200], ImageLimits(min_side=1),
     ErrorCode.TRUNCATED_FILE),
    ("DICOM JPEG 2000 frame larger than Rows x Columns",
     lambda: dicom_testdata_with("MR_small_jp2klossless.dcm", Rows=32, Columns=32),
     ImageLimits(min_side=1), ErrorCode.DICOM_PIXEL_DATA_MISMATCH),
    ("DICOM JPEG-LS frame of the same pixel count, other shape",
     lambda: dicom_testdata_with("MR_small_jpeg_ls_lossless.dcm", Rows=16, Columns=256),
     ImageLimits(min_side=1), ErrorCode.DICOM_PIXEL_DATA_MISMATCH),
    ("DICOM JPEG frame smaller than Rows x Columns",
     lambda: dicom_testdata_with("JPGExtended.dcm", Rows=2048, Columns=2048),
     ImageLimits(), ErrorCode.DICOM_PIXEL_DATA_MISMATCH),
    ("DICOM RLE data that makes the Rust RLE codec panic",
     lambda: overwrite(read_testdata("MR_small_RLE.dcm"), 3295, bytes.fromhex("d732a1df")),
     ImageLimits(min_side=1), ErrorCode.CORRUPT_IMAGE),
    ("DICOM compressed syntax, native Pixel Data",
     lambda: DICOM.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00"),
     ImageLimits(), ErrorCode.DICOM_INVALID),
]  # fmt: skip


def deflate_bomb() -> bytes:
    """A Deflated Explicit VR Little Endian file whose data set inflates to over 32 MiB."""
    dataset = dcmread(io.BytesIO(DICOM))
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset.PixelData = bytes(32 << 20)  # zeros: a few kB once deflated
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_table_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "make", "limits", "code"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_maps_to_its_code(name, make, limits, code):
    with pytest.raises(ImageError) as caught:
        decode_image(make(), limits)
    assert caught.value.code is code, caught.value.message


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    # Were load() called, the lying header would fail as a corrupt or truncated stream instead.
    def no_load(self: Image.Image) -> None:
        raise AssertionError("pixels decoded before the size check")

    data = png_declaring(5000, 5000)  # 25 Mpx: over our limit, under twice Pillow's guard
    monkeypatch.setattr(Image.Image, "load", no_load)
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert caught.value.code is ErrorCode.DECOMPRESSION_BOMB


def test_missing_decoder_names_its_package(monkeypatch):
    # What pydicom's registry holds on a worker without pylibjpeg-openjpeg (and without Pillow).
    decoder = get_decoder(JPEG2000Lossless)
    missing = {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.0")}
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", decoder._unavailable | missing)
    with pytest.raises(ImageError) as caught:
        decode_image(read_testdata("MR_small_jp2klossless.dcm"), ImageLimits(min_side=1))
    assert caught.value.code is ErrorCode.DICOM_DECODER_MISSING
    assert "pylibjpeg-openjpeg" in caught.value.message
    assert "pylibjpeg-openjpeg" in str(caught.value.details["missing"])


def test_unexpected_decoder_exception_becomes_corrupt_image(monkeypatch):
    def broken(data: bytes, limits: ImageLimits, **options: object) -> DecodedImage:
        raise KeyError("a decoder bug")

    monkeypatch.setattr(pipeline.decode, "decode_dicom", broken)
    with pytest.raises(ImageError) as caught:
        decode_image(DICOM)
    assert caught.value.code is ErrorCode.CORRUPT_IMAGE
    assert "KeyError" in caught.value.message


class SoftTimeLimitExceeded(Exception):
    """Stands in for billiard's: an Exception a signal handler raises anywhere."""


class PanicException(BaseException):
    """Stands in for pyo3's: Rust codecs (pylibjpeg-rle) panic with a BaseException."""


@pytest.mark.parametrize(
    ("raised", "escapes"),
    [
        (SoftTimeLimitExceeded(), SoftTimeLimitExceeded),
        (KeyboardInterrupt(), KeyboardInterrupt),
        (PanicException("index out of bounds"), ImageError),
        (MemoryError(), ImageError),
    ],
)
def test_interruptions_pass_through_and_panics_do_not(monkeypatch, raised, escapes):
    def decoder(data: bytes, limits: ImageLimits, **options: object) -> DecodedImage:
        raise raised

    monkeypatch.setattr(pipeline.decode, "decode_dicom", decoder)
    with pytest.raises(escapes):
        decode_image(DICOM)


def test_time_limit_inside_a_decoders_catch_all_passes_through(monkeypatch):
    # dicom.py turns any plugin exception into CORRUPT_IMAGE; a time limit must still escape.
    def as_array(*args: object, **kwargs: object) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(get_decoder("1.2.840.10008.1.2.1"), "as_array", as_array)
    with pytest.raises(SoftTimeLimitExceeded):
        decode_image(DICOM)


def test_mutated_files_fail_with_a_code_or_decode_to_a_consistent_image():
    """A small seeded fuzz: bit flips, cuts and overwrites of valid files of every kind.

    Each mutant either fails with an ImageError carrying a documented code and a message, or
    decodes to an image whose samples preprocessing accepts and whose shape is the declared
    size; nothing else escapes. Cuts must be caught as failures, and the table of outcomes must
    show several distinct codes, so a decoder that swallowed every error would fail here too.
    """
    rng = np.random.default_rng(2024)
    seeds = [DICOM, PNG, JPEG] + [
        read_testdata(name)
        for name in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "image_dfl.dcm")
    ]
    codes: collections.Counter[ErrorCode] = collections.Counter()
    decoded = 0
    for attempt in range(300):
        data = bytearray(seeds[attempt % len(seeds)])
        start = int(rng.integers(0, len(data)))
        if attempt % 3 == 0:
            data = data[: max(start, 1)]
        else:
            data[start : start + 4] = rng.bytes(4)
        try:
            image = decode_image(bytes(data), ImageLimits(min_side=1))
        except ImageError as exc:  # anything else fails the test
            assert exc.code in ErrorCode and exc.message, exc
            codes[exc.code] += 1
            continue
        decoded += 1
        assert image.pixels.dtype in SAMPLE_TYPES
        assert image.pixels.shape[:2] == (image.height, image.width)
        assert image.pixels.ndim == 2 or image.pixels.shape[2] == 3
    assert decoded >= 50, "flips in pixel values must still decode"
    assert sum(codes.values()) >= 100, "a third of the mutants are cut files"
    assert len(codes) >= 4, codes
    assert codes[ErrorCode.TRUNCATED_FILE] > 0


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int8, np.float16])
def test_decode_refuses_sample_types_preprocessing_does_not_take(monkeypatch, dtype):
    def decoded(data: bytes, limits: ImageLimits, **options: object) -> DecodedImage:
        pixels = np.zeros((64, 64), dtype)
        return DecodedImage(pixels, ImageFormat.DICOM, 64, 64, IntensityTransform())

    monkeypatch.setattr(pipeline.decode, "decode_dicom", decoded)
    with pytest.raises(ImageError) as caught:
        decode_image(DICOM)
    assert caught.value.code is ErrorCode.UNSUPPORTED_SAMPLE_TYPE


# PHI --------------------------------------------------------------------------------------------

PHI = {
    "PatientName": "Doe^Secret",
    "PatientID": "PHI-123456",
    "PatientBirthDate": "19700101",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1234567890",
    "AccessionNumber": "ACC-987654",
}
PHI_STRINGS = ["Doe", "Secret", "PHI-123456", "19700101", "1234567890", "ACC-987654"]


def _assert_no_phi(text: str) -> None:
    leaked = [value for value in PHI_STRINGS if value in text]
    assert not leaked, f"PHI leaked: {leaked}"


@pytest.mark.parametrize(
    ("elements", "code"),
    [
        ({"Rows": 128, "Columns": 128}, ErrorCode.DICOM_PIXEL_DATA_MISMATCH),
        ({"PhotometricInterpretation": "Doe^Secret"}, ErrorCode.DICOM_UNSUPPORTED_PHOTOMETRIC),
        ({"Rows": None}, ErrorCode.DICOM_INVALID),
        ({"NumberOfFrames": ("LO", "PHI-123456")}, ErrorCode.DICOM_INVALID),
        ({"RescaleSlope": ("LO", "19700101x")}, ErrorCode.DICOM_INVALID),
        ({"SamplesPerPixel": ("LO", "Doe^Secret")}, ErrorCode.DICOM_INVALID),
    ],
)
def test_error_messages_carry_no_phi(elements, code, caplog):
    data = dicom_file(PIXELS16, **PHI, **elements)
    caplog.clear()  # writing invalid values logs them; only decoding is under test
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    error = caught.value
    assert error.code is code
    _assert_no_phi(error.message)
    _assert_no_phi(str(error))
    _assert_no_phi(repr(error.details))
    _assert_no_phi(caplog.text)


def test_private_transfer_syntax_uid_is_not_echoed():
    data = dicom_file(PIXELS16, syntax="1.2.826.0.1.3680043.8.498.1234567890")
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    _assert_no_phi(str(caught.value))


def test_successful_decode_keeps_phi_out_of_facts_and_logs(caplog):
    # Invalid values make pydicom's validation warn and log them, value included, when read.
    phi = PHI | {"Modality": "PHI-123456", "SOPInstanceUID": "PHI-123456"}
    data = dicom_file(PIXELS16, **phi)
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    image = decode_image(data)
    _assert_no_phi(repr(image.facts))
    _assert_no_phi(repr(image))
    _assert_no_phi(caplog.text)
    assert image.identifiers["patient_id"] == "PHI-123456"  # kept, for pseudonymisation only


def test_every_error_code_is_documented():
    docs = (Path(__file__).parents[3] / "docs" / "error-codes.md").read_text()
    missing = [code.value for code in ErrorCode if f"| `{code.value}` |" not in docs]
    assert not missing
