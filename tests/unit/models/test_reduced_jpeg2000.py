"""The bundled models' allowance for reduced JPEG 2000 decoding, proven on generated images.

A card may allow reduced-resolution JPEG 2000 decoding within a score tolerance; here each
bundled card that does is run on the benchmark generator's JPEG 2000 images both ways, and a
card whose tolerance is tighter than what the images show is refused.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.synthetic import render_chest
from bench.writers import encode
from config.settings import REPO_ROOT
from pipeline.errors import ModelError
from pipeline.reduced_check import FIELD, check_reduced_jpeg2000
from pipeline.repository import LoadedModel, ModelRepository

REPOSITORY = ModelRepository(REPO_ROOT / "models")


@pytest.fixture(scope="module")
def jpeg2000_images() -> list[bytes]:
    """Both JPEG 2000 variants of the workload, at sizes reduced 3 and 2 levels for 224."""
    cases = [("dicom-m2-u12-j2k", 2048, 2048), ("dicom-m2-s16-j2k", 1024, 1248)]
    return [
        encode(render_chest(5, index, width, height, index == 0)[0], variant, seed=5, index=index)
        for index, (variant, width, height) in enumerate(cases)
    ]


def with_tolerance(model: LoadedModel, tolerance: float | None) -> LoadedModel:
    preprocess = replace(model.card.preprocess, reduced_jpeg2000_tolerance=tolerance)
    return replace(model, card=replace(model.card, preprocess=preprocess))


def test_densenet_allows_reduced_jpeg2000():
    card = REPOSITORY.load("chest-xray-densenet121").card
    assert card.preprocess.reduced_jpeg2000_tolerance is not None


# Only the cards that allow reduced decoding have an allowance to prove (the others decode
# JPEG 2000 in full); test_densenet_allows_reduced_jpeg2000 keeps this list from being empty.
ALLOWING = [c for c in REPOSITORY.cards() if c.preprocess.reduced_jpeg2000_tolerance is not None]


@pytest.mark.parametrize("card", ALLOWING, ids=lambda card: card.ref)
def test_every_allowance_of_a_bundled_card_holds(card, jpeg2000_images):
    change = check_reduced_jpeg2000(REPOSITORY.load(card.ref), jpeg2000_images)
    assert 0 < change <= card.preprocess.reduced_jpeg2000_tolerance  # > 0: it did reduce


def test_an_allowance_tighter_than_the_images_show_is_refused(jpeg2000_images):
    model = with_tolerance(REPOSITORY.load("tiny"), 1e-5)
    with pytest.raises(ModelError) as caught:
        check_reduced_jpeg2000(model, jpeg2000_images)
    assert caught.value.field == FIELD
    assert "over the card's tolerance" in str(caught.value)


def test_images_that_are_not_jpeg2000_prove_nothing():
    png_like = encode(render_chest(5, 9, 512, 512, False)[0], "dicom-m2-u12-rle", seed=5, index=9)
    with pytest.raises(ModelError) as caught:
        check_reduced_jpeg2000(with_tolerance(REPOSITORY.load("tiny"), 0.5), [png_like])
    assert caught.value.field == FIELD


def test_a_card_without_the_allowance_cannot_be_checked(jpeg2000_images):
    with pytest.raises(ModelError):
        check_reduced_jpeg2000(with_tolerance(REPOSITORY.load("tiny"), None), jpeg2000_images)
