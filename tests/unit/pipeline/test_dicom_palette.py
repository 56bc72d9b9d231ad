"""PALETTE COLOR in big endian: a real palette file, re-encoded by DCMTK, scores as its twin.

pydicom's ``apply_color_lut`` reads non-segmented LUT Data as little endian whatever the file's
byte order, which made a big endian palette image nearly black and still ``ok``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from pipeline.decode import decode_image
from pipeline.predict import Predictor
from pipeline.repository import ModelRepository
from tests.system_tools import require_tool
from tests.unit.pipeline.test_dicom_golden import read_testdata

BUNDLED = Path(__file__).resolve().parents[3] / "models"
PALETTE_FILE = "examples_palette.dcm"  # US, 8-bit indices, 16-bit palette entries (OW)


def big_endian_twin(tmp_path: Path) -> bytes:
    """The palette file re-encoded by DCMTK in Explicit VR Big Endian (``dcmconv +tb``)."""
    dcmconv = require_tool("dcmconv", "dcmtk")
    source, twin = tmp_path / "le.dcm", tmp_path / "be.dcm"
    source.write_bytes(read_testdata(PALETTE_FILE))
    subprocess.run([dcmconv, "+tb", str(source), str(twin)], check=True, capture_output=True)
    return twin.read_bytes()


def test_big_endian_palette_decodes_to_its_little_endian_twin(tmp_path: Path) -> None:
    twin = decode_image(big_endian_twin(tmp_path))
    reference = decode_image(read_testdata(PALETTE_FILE))
    assert twin.facts["transfer_syntax"] == "1.2.840.10008.1.2.2"  # really big endian
    assert twin.pixels.dtype.isnative
    np.testing.assert_array_equal(twin.pixels, reference.pixels)
    assert twin.pixels[0, 0].tolist() == [9472, 15872, 24064]  # not byte-swapped [37, 62, 94]


def test_big_endian_palette_scores_what_its_twin_scores(tmp_path: Path) -> None:
    predictor = Predictor(ModelRepository(BUNDLED).load("tiny"))
    twin, reference = predictor.predict(
        [("be.dcm", big_endian_twin(tmp_path)), ("le.dcm", read_testdata(PALETTE_FILE))]
    )
    assert twin.status == reference.status == "ok", (twin.error_message, reference.error_message)
    assert twin.scores == reference.scores
