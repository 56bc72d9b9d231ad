"""Every real DICOM file pydicom's wheel ships: decoded to a reference decoder's values, or refused.

The table (``reference.json``) was recorded once by ``record_reference.py`` from DCMTK and GDCM;
nothing is fetched or recomputed here. Lossless syntaxes must match the reference exactly; for
lossy JPEG the row may name the checksum of the IDCT we match, recorded within the table's
tolerance of the reference.
"""

from __future__ import annotations

import pytest

from pipeline.dicom import read_stored
from pipeline.errors import ErrorCode, ImageError
from pipeline.limits import ImageLimits
from pipeline.sniff import sniff_format
from tests.golden.canonical import checksum, load_reference
from tests.golden.record_reference import LOSSY, pydicom_test_files

ANY_SIZE = ImageLimits(min_side=1)  # the test files are small (3 x 3 up to 1024 x 256)
TABLE = load_reference()


def installed_dicom_files() -> set[str]:
    """DICOM files (judged by content) physically in the installed wheel, no downloads."""
    root = pydicom_test_files()
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and _is_dicom(path.read_bytes())
    }


def _is_dicom(data: bytes) -> bool:
    try:
        return sniff_format(data).name == "DICOM"
    except ImageError:
        return False


def test_the_table_covers_every_installed_dicom_file():
    assert installed_dicom_files() == set(TABLE)


def test_the_table_decodes_most_files_and_refuses_multiframe():
    decodes = [row for row in TABLE.values() if row["expect"] == "decodes"]
    assert len(decodes) >= 70
    assert all(str(row["reference_sha256"]) for row in decodes)
    multiframe = [name for name, row in TABLE.items() if row["expect"] == "DICOM_MULTIFRAME"]
    assert "SC_rgb_rle_2frame.dcm" in multiframe and len(multiframe) >= 5


@pytest.mark.parametrize("name", sorted(TABLE))
def test_real_file_matches_the_reference(name):
    row = TABLE[name]
    data = (pydicom_test_files() / name).read_bytes()
    if row["expect"] != "decodes":
        with pytest.raises(ImageError) as caught:
            read_stored(data, ANY_SIZE)
        assert caught.value.code is ErrorCode(row["expect"])
        return
    ours = checksum(read_stored(data, ANY_SIZE).pixels)
    if "matched_decoder_sha256" in row:  # lossy: another IDCT, within the recorded tolerance
        assert row["transfer_syntax"] in LOSSY
        assert int(row["max_difference"]) <= 3
        assert ours in (row["reference_sha256"], row["matched_decoder_sha256"])
    else:
        assert ours == row["reference_sha256"], row["reference_tool"]
