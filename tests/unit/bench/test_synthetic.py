"""The synthetic chest X-ray generator: determinism, the image spec, every file variant."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import UID

from bench.generate import main as generate_main
from bench.synthetic import (
    NODULE_CONTRAST_RANGE,
    NODULE_RADIUS_RANGE,
    lung_field_mask,
    make_anatomy,
    render_chest,
)
from bench.workload import GROUND_TRUTH, generate_workload, plan_item, read_ground_truth
from bench.writers import DICOM_VARIANTS, VARIANTS, encode
from pipeline.image import ImageFormat

# Not square, and not a multiple of the coarse-grid step: catches row/column mix-ups and crops.
WIDTH, HEIGHT = 400, 333


@pytest.fixture(scope="module")
def chest() -> np.ndarray:
    image, nodules = render_chest(11, 3, WIDTH, HEIGHT, nodules=True)
    assert nodules
    return image


# ---------------------------------------------------------------------------------------------
# The image
# ---------------------------------------------------------------------------------------------


def test_render_is_deterministic_per_seed_and_index() -> None:
    first, nodules = render_chest(5, 2, 256, 300, nodules=True)
    again, nodules_again = render_chest(5, 2, 256, 300, nodules=True)
    assert np.array_equal(first, again) and nodules == nodules_again
    assert not np.array_equal(first, render_chest(6, 2, 256, 300, nodules=True)[0])
    assert not np.array_equal(first, render_chest(5, 3, 256, 300, nodules=True)[0])


def test_render_shape_type_and_grey_levels(chest: np.ndarray) -> None:
    assert chest.shape == (HEIGHT, WIDTH) and chest.dtype == np.float32
    assert chest.min() >= 0.0 and chest.max() <= 1.0
    plain, _ = render_chest(11, 3, WIDTH, HEIGHT, nodules=False)
    lungs = lung_field_mask(make_anatomy(11, 3, WIDTH, HEIGHT))
    assert 0.12 < np.median(plain[lungs]) < 0.33  # dark lungs
    assert np.median(plain[HEIGHT - 40 :, WIDTH // 2 - 40 : WIDTH // 2 + 40]) > 0.5  # bright body


@pytest.mark.parametrize("index", range(12))
def test_nodules_inside_lungs_with_the_spec_radius_and_contrast(index: int) -> None:
    width, height = (512, 512) if index % 2 else (480, 400)
    positive, nodules = render_chest(7, index, width, height, nodules=True)
    negative, none = render_chest(7, index, width, height, nodules=False)
    assert 1 <= len(nodules) <= 3 and none == []
    lungs = lung_field_mask(make_anatomy(7, index, width, height))
    rows, cols = np.mgrid[0:height, 0:width]
    for nodule in nodules:
        assert NODULE_RADIUS_RANGE[0] <= nodule.radius / width <= NODULE_RADIUS_RANGE[1]
        assert NODULE_CONTRAST_RANGE[0] <= nodule.contrast <= NODULE_CONTRAST_RANGE[1]
        disc = np.hypot(cols - nodule.x, rows - nodule.y) <= nodule.radius * 1.4
        assert lungs[disc].all()
        # Same anatomy and noise: the difference at the centre is the nodule's peak contrast.
        y, x = round(nodule.y), round(nodule.x)
        assert positive[y, x] - negative[y, x] == pytest.approx(nodule.contrast, abs=0.01)
    for a, b in itertools.combinations(nodules, 2):
        assert np.hypot(a.x - b.x, a.y - b.y) > a.radius + b.radius


def test_negative_and_positive_differ_only_at_nodules() -> None:
    positive, nodules = render_chest(3, 9, 300, 300, nodules=True)
    negative, _ = render_chest(3, 9, 300, 300, nodules=False)
    rows, cols = np.mgrid[0:300, 0:300]
    far = np.ones((300, 300), dtype=bool)
    for nodule in nodules:
        far &= np.hypot(cols - nodule.x, rows - nodule.y) > nodule.radius * 2.5
    assert np.array_equal(positive[far], negative[far])


def test_noise_level_is_within_the_spec(chest: np.ndarray) -> None:
    # Horizontal differences cancel the smooth anatomy; their spread is sqrt(2) sigma.
    patch = chest[HEIGHT // 2 - 20 : HEIGHT // 2 + 20, 20:60]
    sigma = np.std(np.diff(patch, axis=1)) / np.sqrt(2)
    assert 0.008 < sigma < 0.022


# ---------------------------------------------------------------------------------------------
# The writers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_encode_is_deterministic(chest: np.ndarray, variant: str) -> None:
    data = encode(chest, variant, seed=11, index=3)
    assert data == encode(chest, variant, seed=11, index=3)
    if variant.startswith("dicom"):  # the seed sets the UIDs and the stored value range
        assert data != encode(chest, variant, seed=12, index=3)


def display_from_dicom(data: bytes) -> np.ndarray:
    """Stored values -> rescale -> LINEAR window (PS3.3 C.11.2.1.2.1) -> MONOCHROME1 inversion.

    Without a window, a 0.5-99.5 percentile window over the modality values.
    """
    ds = dcmread(io.BytesIO(data))
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope)
    values += float(ds.RescaleIntercept)
    if "WindowCenter" in ds:
        center, width = float(ds.WindowCenter), float(ds.WindowWidth)
        display = (values - (center - 0.5)) / (width - 1) + 0.5
    else:
        low, high = np.percentile(values, [0.5, 99.5])
        display = (values - low) / (high - low)
    display = np.clip(display, 0.0, 1.0)
    return 1.0 - display if ds.PhotometricInterpretation == "MONOCHROME1" else display


@pytest.mark.parametrize("variant", list(DICOM_VARIANTS))
def test_dicom_variant_reads_back_as_the_display_image(chest: np.ndarray, variant: str) -> None:
    spec = DICOM_VARIANTS[variant]
    data = encode(chest, variant, seed=11, index=3)
    ds = dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == spec.transfer_syntax
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == spec.sop_class
    assert (ds.Rows, ds.Columns) == (HEIGHT, WIDTH)
    assert ds.PhotometricInterpretation == spec.photometric
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (
        16,
        spec.bits_stored,
        spec.bits_stored - 1,
    )
    assert ds.PixelRepresentation == int(spec.signed)
    assert ("WindowCenter" in ds) == spec.windowed
    assert ds.PatientID == "SYN3" and str(ds.PatientName) == "SYNTH^3"
    assert UID(ds.SOPInstanceUID).is_valid and UID(ds.StudyInstanceUID).is_valid
    if spec.signed:
        assert float(ds.RescaleIntercept) == -1024 and ds.pixel_array.min() < 0
    expected = chest.astype(np.float64)
    if not spec.windowed:  # the same percentile window applied to the display image
        low, high = np.percentile(expected, [0.5, 99.5])
        expected = np.clip((expected - low) / (high - low), 0.0, 1.0)
    assert np.abs(display_from_dicom(data) - expected).max() <= 1 / 255


def test_signed_12_bit_leaves_the_bits_above_high_bit_clear(chest: np.ndarray) -> None:
    ds = dcmread(io.BytesIO(encode(chest, "dicom-m2-s12-explicit")))
    raw = np.frombuffer(ds.PixelData, dtype="<u2")
    assert (raw >> 12).max() == 0
    assert ds.pixel_array.min() < 0  # pydicom sign-extends from BitsStored


@pytest.mark.parametrize(
    ("variant", "mode", "top", "max_error", "mean_error"),
    [
        ("png-8", "L", 255, 0.5 / 255 + 1e-6, 0.25 / 255 + 1e-3),
        ("png-16", "I;16", 65535, 0.5 / 65535 + 1e-6, 1e-5),
        ("jpeg-8", "L", 255, 0.1, 0.015),
    ],
)
def test_png_and_jpeg_read_back_as_the_display_image(
    chest: np.ndarray, variant: str, mode: str, top: int, max_error: float, mean_error: float
) -> None:
    with Image.open(io.BytesIO(encode(chest, variant))) as pil:
        assert pil.mode == mode and pil.size == (WIDTH, HEIGHT)
        error = np.abs(np.asarray(pil).astype(np.float64) / top - chest)
    assert error.max() <= max_error and error.mean() <= mean_error


# ---------------------------------------------------------------------------------------------
# The workload
# ---------------------------------------------------------------------------------------------


def test_plan_is_independent_of_count_with_exact_block_proportions() -> None:
    plans = [plan_item(4, index) for index in range(40)]
    formats = [plan.variant.split("-")[0] for plan in plans]
    assert formats.count("dicom") == 20 and formats.count("png") == 10
    assert formats.count("jpeg") == 10
    assert sum(plan.has_nodule for plan in plans) == 16
    assert {plan.variant for plan in plans if plan.variant.startswith("dicom")} == set(
        DICOM_VARIANTS
    )
    assert all(max(p.width, p.height) <= 3000 for p in plans)
    small = [plan_item(4, index, "png", max_side=300) for index in range(10)]
    assert all(p.variant.startswith("png") and max(p.width, p.height) <= 300 for p in small)


def test_generate_workload_writes_files_matching_the_ground_truth(tmp_path: Path) -> None:
    items = generate_workload(tmp_path, 10, seed=2, max_side=256)
    assert [item.index for item in items] == list(range(10))
    truth = read_ground_truth(tmp_path / GROUND_TRUTH)
    assert [(t.path, t.variant, t.width, t.height, t.has_nodule) for t in truth] == [
        (i.path, i.variant, i.width, i.height, i.has_nodule) for i in items
    ]
    for item, row in zip(items, truth, strict=True):
        assert item.path.is_file() and item.has_nodule == bool(item.nodules)
        assert len(row.nodules) == len(item.nodules)
        for written, nodule in zip(row.nodules, item.nodules, strict=True):
            assert abs(written.x - nodule.x) < 0.01 and abs(written.radius - nodule.radius) < 0.01
        if item.format is ImageFormat.DICOM:
            ds = dcmread(item.path, stop_before_pixels=True)
            assert (ds.Columns, ds.Rows) == (item.width, item.height)
        else:
            with Image.open(item.path) as pil:
                assert pil.size == (item.width, item.height)
                assert pil.format == item.format.value.upper()
    negatives = [row for row in truth if not row.has_nodule]
    assert negatives and all(row.nodules == () for row in negatives)
    # Same seed, same bytes.
    again = generate_workload(tmp_path / "again", 3, seed=2, max_side=256)
    assert all(
        a.path.read_bytes() == b.path.read_bytes() for a, b in zip(again, items[:3], strict=True)
    )


def test_generate_command_restricts_the_mix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate_main([str(tmp_path), "--count", "4", "--seed", "1", "--mix", "jpeg",
                          "--max-side", "200"]) == 0  # fmt: skip
    assert "wrote 4 images" in capsys.readouterr().out
    truth = read_ground_truth(tmp_path / GROUND_TRUTH)
    assert [row.variant for row in truth] == ["jpeg-8"] * 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".jpg") == [
        f"{i:05d}.jpg" for i in range(4)
    ]
