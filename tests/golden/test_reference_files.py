"""Every real DICOM file our test-data packages ship: decoded to the reference values, or refused.

The table (``reference.json``) was recorded once by ``record_reference.py`` from DCMTK and GDCM
over pydicom's test files, ``pydicom-data`` and ``deid-data`` (:mod:`tests.golden.sources`);
nothing is fetched or recomputed here. Lossless syntaxes must match the reference exactly; for
lossy JPEG the row may name the checksum of the IDCT we match, recorded within the table's
tolerance of the reference.
"""

from __future__ import annotations

import pytest

from pipeline.dicom import read_stored
from pipeline.errors import ErrorCode, ImageError
from pipeline.limits import ImageLimits
from tests.golden.canonical import checksum, load_reference
from tests.golden.record_reference import LOSSY
from tests.golden.sources import installed_dicom_files, locate

ANY_SIZE = ImageLimits(min_side=1)  # the test files are small (3 x 3 up to 2048 x 2487)
TABLE = load_reference()


def test_the_table_covers_every_installed_dicom_file():
    assert {name for name, _ in installed_dicom_files()} == set(TABLE)


def test_every_collection_is_in_the_table():
    per_collection: dict[str, int] = {}
    for name in TABLE:
        collection = name.partition("/")[0]
        per_collection[collection] = per_collection.get(collection, 0) + 1
    assert per_collection.keys() == {"pydicom", "pydicom-data", "deid-data"}
    assert per_collection["pydicom-data"] >= 60 and per_collection["deid-data"] >= 10


def test_the_table_decodes_most_files_and_refuses_multiframe():
    decodes = [row for row in TABLE.values() if row["expect"] == "decodes"]
    assert len(decodes) >= 120
    assert all(str(row["reference_sha256"]) for row in decodes)
    multiframe = [name for name, row in TABLE.items() if row["expect"] == "DICOM_MULTIFRAME"]
    assert "pydicom/SC_rgb_rle_2frame.dcm" in multiframe and len(multiframe) >= 10


@pytest.mark.parametrize("name", sorted(TABLE))
def test_real_file_matches_the_reference(name):
    row = TABLE[name]
    data = locate(name).read_bytes()
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
