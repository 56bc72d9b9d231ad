"""pydicom's decoders and our second JPEG plugin (imagecodecs), tried when pylibjpeg refuses."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread, uid
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder

from pipeline.dicom_codec import FALLBACK_PLUGIN
from pipeline.errors import ImageError
from tests.unit.pipeline.test_dicom_golden import decode_testdata

TEST_FILES = Path(get_testdata_file("CT_small.dcm", download=False)).parent
JPEG_SYNTAXES = {*uid.JPEGTransferSyntaxes, *uid.JPEGLSTransferSyntaxes}
LOSSLESS = {uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless}
# Lossy JPEG: two IDCT implementations may round a sample differently (ISO 10918-2 allows it).
IDCT_TOLERANCE = 3


def jpeg_test_files() -> list[tuple[str, str]]:
    """(file name, transfer syntax) of every JPEG / JPEG-LS file pydicom's wheel ships."""
    found = []
    for path in sorted(TEST_FILES.iterdir()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = dcmread(path, stop_before_pixels=True)
            syntax = header.file_meta.TransferSyntaxUID
        except Exception:  # not DICOM, or no File Meta: not a JPEG test file
            continue
        if syntax in JPEG_SYNTAXES and "PixelData" in dcmread(path, specific_tags=["PixelData"]):
            found.append((path.name, syntax))
    return found


JPEG_FILES = jpeg_test_files()


def decode_with(plugin: str, name: str) -> np.ndarray | None:
    """Stored values (no colour conversion) from one plugin, None when it refuses the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = dcmread(TEST_FILES / name)
            decoder = get_decoder(dataset.file_meta.TransferSyntaxUID)
            return decoder.as_array(dataset, index=0, decoding_plugin=plugin, raw=True)[0]
    except Exception:  # the plugin refuses the stream
        return None


def test_every_jpeg_syntax_has_the_fallback_after_pylibjpeg():
    for syntax in JPEG_SYNTAXES:
        plugins = get_decoder(syntax).available_plugins
        assert "pylibjpeg" in plugins and FALLBACK_PLUGIN in plugins


def test_there_are_jpeg_files_to_compare():
    assert len(JPEG_FILES) >= 20
    assert {syntax for _, syntax in JPEG_FILES} >= {uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit}


@pytest.mark.parametrize(("name", "syntax"), JPEG_FILES, ids=[name for name, _ in JPEG_FILES])
def test_both_decoders_agree_on_every_jpeg_test_file(name, syntax):
    first, second = decode_with("pylibjpeg", name), decode_with(FALLBACK_PLUGIN, name)
    if first is None and second is None:  # a broken file (SC_rgb_jpeg.dcm: no item tags)
        with pytest.raises(ImageError):
            decode_testdata(name)
        return
    assert second is not None, "the fallback refuses a file pylibjpeg decodes"
    if first is None:  # pylibjpeg refuses it: only JPEG-lossy.dcm, checked below
        assert name == "JPEG-lossy.dcm"
        return
    assert first.shape == second.shape and first.dtype == second.dtype
    difference = np.abs(first.astype(np.int32) - second.astype(np.int32)).max()
    assert difference <= (0 if syntax in LOSSLESS else IDCT_TOLERANCE)


def test_12_bit_extended_jpeg_that_pylibjpeg_refuses_decodes_through_the_fallback():
    assert decode_with("pylibjpeg", "JPEG-lossy.dcm") is None
    image = decode_testdata("JPEG-lossy.dcm")
    assert image.pixels.shape == (1024, 256) and image.pixels.dtype == np.uint16
    assert int(image.pixels.max()) < 1 << 12
    np.testing.assert_array_equal(image.pixels, decode_with(FALLBACK_PLUGIN, "JPEG-lossy.dcm"))
