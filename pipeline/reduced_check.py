"""Prove a card's allowance for reduced-resolution JPEG 2000 decoding on real images.

Reduced decoding is not exact (see :mod:`pipeline.j2k_reduced`), so whether it may be used is a
property of the model: its card states the largest score change it accepts
(``preprocess.reduced_jpeg2000_tolerance``), and this check runs the model on JPEG 2000 images
both ways and refuses the card when any score moves by more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pipeline.errors import ModelError
from pipeline.predict import Predictor
from pipeline.repository import LoadedModel
from pipeline.result import OK, ImageResult

FIELD = "preprocess.reduced_jpeg2000_tolerance"
_JPEG2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")


def check_reduced_jpeg2000(model: LoadedModel, images: Sequence[bytes]) -> float:
    """Score ``images`` with full and reduced JPEG 2000 decoding; the largest score change.

    Parameters
    ----------
    model : LoadedModel
        A model whose card sets ``preprocess.reduced_jpeg2000_tolerance``.
    images : sequence of bytes
        DICOM files in a JPEG 2000 syntax, larger than twice the model's input (else nothing
        is reduced), e.g. the benchmark generator's ``dicom-*-j2k`` variants.

    Returns
    -------
    float
        The largest absolute change of any label's score over all images.

    Raises
    ------
    ModelError
        ``field`` is ``preprocess.reduced_jpeg2000_tolerance``: the card sets none, an image is
        not a JPEG 2000 DICOM file that both ways decode, or a score moves by more than it.
    """
    tolerance = model.card.preprocess.reduced_jpeg2000_tolerance
    if tolerance is None:
        raise ModelError("the card does not allow reduced JPEG 2000 decoding", field=FIELD)
    full_card = replace(
        model.card, preprocess=replace(model.card.preprocess, reduced_jpeg2000_tolerance=None)
    )
    items = [(f"image-{i}", data) for i, data in enumerate(images)]
    reduced = Predictor(model).predict(items)
    full = Predictor(replace(model, card=full_card)).predict(items)
    change = max((_largest_change(a, b) for a, b in zip(reduced, full, strict=True)), default=0)
    if change > tolerance:
        raise ModelError(
            f"reduced JPEG 2000 decoding moves a score by {change:.4f}, over the card's "
            f"tolerance of {tolerance}",
            field=FIELD,
        )
    return change


def _largest_change(reduced: ImageResult, full: ImageResult) -> float:
    for result in (reduced, full):
        if result.status != OK or result.facts.get("transfer_syntax") not in _JPEG2000:
            raise ModelError(
                f"{result.ref} is not a JPEG 2000 image that decodes "
                f"({result.error_code or result.facts.get('transfer_syntax')})",
                field=FIELD,
            )
    return max(abs(reduced.scores[label] - full.scores[label]) for label in full.scores)
