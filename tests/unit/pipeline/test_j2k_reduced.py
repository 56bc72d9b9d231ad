"""Reduced-resolution JPEG 2000 decoding: the level chosen, the values, and when it is not used."""

from __future__ import annotations

import numpy as np
import pytest

from bench.synthetic import render_chest
from bench.writers import encode
from pipeline.decode import decode_image
from pipeline.j2k_reduced import reduction_level
from tests.unit.pipeline.test_dicom_golden import ANY_SIZE, read_testdata


@pytest.mark.parametrize(
    ("rows", "columns", "target", "levels", "level"),
    [
        (2048, 2048, (224, 224), 5, 3),  # 256 x 256: one more level would be 128
        (2500, 2048, (224, 224), 5, 3),
        (1024, 1024, (224, 224), 5, 2),
        (448, 448, (224, 224), 5, 1),
        (447, 448, (224, 224), 5, 1),  # ceil(447 / 2) = 224
        (446, 448, (224, 224), 5, 0),
        (4096, 4096, (224, 224), 2, 2),  # never more than the codestream's levels
        (2048, 2048, (256, 256), 5, 3),
    ],
)
def test_reduction_level(rows, columns, target, levels, level):
    assert reduction_level(rows, columns, target, levels) == level


@pytest.mark.parametrize("variant", ["dicom-m2-u12-j2k", "dicom-m2-s16-j2k"])
def test_reduced_frame_is_the_low_band_of_the_full_one(variant):
    data = encode(render_chest(3, 1, 512, 512, True)[0], variant, seed=3, index=1)
    full = decode_image(data).pixels
    reduced = decode_image(data, draft_size=(64, 64), reduce_jpeg2000=True)
    assert reduced.pixels.shape == (64, 64)  # level 3 of 512
    assert reduced.pixels.dtype == full.dtype  # uint16, or int16 sign-extended
    assert (reduced.width, reduced.height) == (512, 512)  # the stored size, as for JPEG draft
    # Not an area average (edges differ by up to half the range at this small size), but the
    # same picture on the same scale: a wrong sign, shift or byte order would break both.
    blocks = full.astype(np.float64).reshape(64, 8, 64, 8).mean(axis=(1, 3))
    values = reduced.pixels.astype(np.float64)
    scale = float(full.max()) - float(full.min())
    assert abs((values - blocks).mean()) / scale < 0.005
    assert np.corrcoef(values.ravel(), blocks.ravel())[0, 1] > 0.9


def test_without_the_allowance_the_frame_is_decoded_in_full():
    data = encode(render_chest(3, 1, 512, 512, True)[0], "dicom-m2-u12-j2k", seed=3, index=1)
    assert decode_image(data, draft_size=(64, 64)).pixels.shape == (512, 512)


@pytest.mark.parametrize(
    "name",
    [
        "693_J2KI.dcm",  # codestream precision 16, Bits Stored 14: pydicom's corrections apply
        "J2K_pixelrep_mismatch.dcm",  # unsigned codestream, signed header
        "SC_rgb_gdcm_KY.dcm",  # three samples
    ],
)
def test_files_the_reduced_path_does_not_cover_decode_in_full(name):
    data = read_testdata(name)
    full = decode_image(data, ANY_SIZE)
    drafted = decode_image(data, ANY_SIZE, draft_size=(8, 8), reduce_jpeg2000=True)
    np.testing.assert_array_equal(drafted.pixels, full.pixels)
