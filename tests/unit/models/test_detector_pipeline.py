"""The nodule detector through the whole pipeline, per format: bytes to scores.

This is the end-to-end check of the image side: a sign error in rescale, windowing or
MONOCHROME1 inversion, or a wrong channel or scale, turns bright nodules dark and the AUC
collapses for the formats that use that rule.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from bench.scoring import roc_auc
from bench.synthetic import render_chest
from bench.writers import DICOM_VARIANTS, IMAGE_VARIANTS, encode, variant_format
from config.settings import REPO_ROOT
from pipeline.predict import Predictor
from pipeline.repository import ModelRepository

SEED = 4242
SIDE = 512
PAIRS_PER_VARIANT = {"dicom": 4, "png": 10, "jpeg": 20}  # 20-48 pairs per format


@pytest.fixture(scope="module")
def scored() -> dict[str, list[tuple[bool, float]]]:
    """(has_nodule, score) per group: each format, and each DICOM variant family."""
    repository = ModelRepository(REPO_ROOT / "models")
    predictor = Predictor(repository.load("nodule-detector"))
    groups: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    index = 0
    for variant in (*DICOM_VARIANTS, *IMAGE_VARIANTS):
        fmt = str(variant_format(variant))
        for _ in range(PAIRS_PER_VARIANT[fmt]):
            index += 1
            for has_nodule in (True, False):
                display, _ = render_chest(SEED, index, SIDE, SIDE, has_nodule)
                data = encode(display, variant, seed=SEED, index=index)
                result = predictor.predict_one(f"{variant}-{index}", data)
                assert result.status == "ok", (variant, result.error_code, result.error_message)
                score = result.scores["Nodule"]
                groups[fmt].append((has_nodule, score))
                # MONOCHROME1 and signed families get their own AUC: one inversion or
                # intercept bug must not hide inside the DICOM average.
                if fmt == "dicom":
                    groups[variant.split("-")[1]].append((has_nodule, score))
                    groups[variant.split("-")[2]].append((has_nodule, score))
    return groups


@pytest.mark.parametrize("group", ["dicom", "png", "jpeg", "m1", "m2", "u12", "u16", "s12", "s16"])
def test_detector_separates_nodules(
    scored: dict[str, list[tuple[bool, float]]], group: str
) -> None:
    pairs = scored[group]
    assert len(pairs) >= 8, f"too few images in {group}: {len(pairs)}"
    auc = roc_auc([truth for truth, _ in pairs], [score for _, score in pairs])
    assert auc >= 0.95, f"{group}: ROC AUC {auc:.3f} over {len(pairs)} images"
