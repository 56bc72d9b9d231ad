"""The fast path (reduce, then transform) against the float64 full-resolution reference."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from pipeline.card import InputSpec, ModelCard, OutputSpec, PreprocessSpec
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage, ImageFormat, IntensityTransform, Window
from pipeline.preprocess import preprocess
from tests.unit.pipeline.reference_preprocess import reference_display, reference_preprocess
from tests.unit.pipeline.synthetic import as_dtype, decoded, radiograph, rgb

TOLERANCE = 0.02  # on the [0, 1] display scale, before mean/std


def make_card(
    height: int = 224,
    width: int = 224,
    *,
    channels: int = 1,
    layout: str = "NCHW",
    resize: str = "stretch",
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> ModelCard:
    return ModelCard(
        name="test",
        version="1",
        description="",
        input=InputSpec("input", layout, channels, height, width),
        preprocess=PreprocessSpec(resize=resize, mean=mean, std=std),
        output=OutputSpec("logits", "sigmoid", ("a",)),
        batch_size=1,
        sha256="0" * 64,
    )


def dicom16(window: Window | None = None, **transform: Any) -> DecodedImage:
    pixels = as_dtype(radiograph(2048, 2048, 200, 3900, seed=1), np.uint16)
    return decoded(pixels, IntensityTransform(window=window, **transform))


def signed_ct() -> DecodedImage:
    # Stored -1200..2800 (signed), rescaled by 0.5 and -100: a window in modality units.
    pixels = as_dtype(radiograph(1100, 800, -1200, 2800, seed=2), np.int16)
    window = Window(center=200.0, width=1400.0)
    return decoded(pixels, IntensityTransform(slope=0.5, intercept=-100.0, window=window))


def png(pixels: np.ndarray, high: float) -> DecodedImage:
    return decoded(pixels, IntensityTransform(value_range=(0.0, high)), ImageFormat.PNG)


CASES: dict[str, tuple[DecodedImage, ModelCard]] = {
    "linear": (dicom16(Window(2000.0, 3000.0)), make_card()),
    "linear-exact": (dicom16(Window(2000.0, 3000.0, "LINEAR_EXACT")), make_card()),
    "sigmoid": (dicom16(Window(2000.0, 3000.0, "SIGMOID")), make_card()),
    # Reduce-first's own error, mean(clip(x)) != clip(mean(x)) where noise straddles a window
    # edge, grows as pixel noise / window width: here 37 / 1500 gives 0.016.
    "narrow-window": (dicom16(Window(2500.0, 1500.0)), make_card()),
    "monochrome1": (dicom16(Window(2000.0, 3000.0), invert=True), make_card()),
    "signed-intercept": (signed_ct(), make_card()),
    "percentile": (dicom16(), make_card()),
    "percentile-monochrome1": (dicom16(invert=True), make_card()),
    "png8": (png(as_dtype(radiograph(1500, 1500, 0, 255, seed=3), np.uint8), 255), make_card()),
    "png16": (
        png(as_dtype(radiograph(900, 1200, 0, 65535, seed=4), np.uint16), 65535),
        make_card(),
    ),
    "rgb": (png(rgb(1200, 1000), 255), make_card(channels=3)),
    "rgb-to-grey": (png(rgb(1200, 1000), 255), make_card(channels=1)),
    "grey-to-rgb": (dicom16(Window(2000.0, 3000.0)), make_card(channels=3)),
    "letterbox-tall": (signed_ct(), make_card(resize="letterbox")),
    "letterbox-wide": (
        png(as_dtype(radiograph(700, 1900, 0, 255, seed=5), np.uint8), 255),
        make_card(resize="letterbox"),
    ),
    "letterbox-rgb": (png(rgb(1100, 1500), 255), make_card(channels=3, resize="letterbox")),
    "stretch-non-square": (
        png(as_dtype(radiograph(1700, 1300, 0, 255, seed=6), np.uint8), 255),
        make_card(256, 192),
    ),
    "letterbox-non-square": (
        dicom16(Window(2000.0, 3000.0)),
        make_card(160, 256, resize="letterbox"),
    ),
    "enlarge": (png(as_dtype(radiograph(150, 120, 0, 255, seed=7), np.uint8), 255), make_card()),
}


def display_difference(image: DecodedImage, card: ModelCard, reference: DecodedImage) -> float:
    """Max |fast - reference| on the display scale; ``card`` must have mean 0 and std 1."""
    fast = preprocess(image, card)
    expected = reference_display(reference, card).transpose(2, 0, 1)
    assert fast.shape == expected.shape
    assert fast.dtype == np.float32
    return float(np.abs(fast - expected).max())


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_matches_reference(name: str) -> None:
    image, card = CASES[name]
    assert display_difference(image, card, image) <= TOLERANCE


def test_reference_itself_is_on_the_display_scale() -> None:
    image, card = CASES["monochrome1"]
    display = reference_display(image, card)
    assert display.min() >= 0.0 and display.max() <= 1.0
    assert display.max() - display.min() > 0.5  # a real image, not a constant


# A sign error or a swapped step must move the output well past the tolerance: the comparison
# above is only worth something if it can fail.
MUTANTS = {
    "invert ignored": ("monochrome1", lambda t: replace(t, invert=False)),
    "intercept sign": ("signed-intercept", lambda t: replace(t, intercept=-t.intercept)),
    "slope ignored": ("signed-intercept", lambda t: replace(t, slope=1.0)),
    "window centre off by width/8": (
        "linear",
        lambda t: replace(t, window=replace(t.window, center=t.window.center + 375)),
    ),
    "percentiles replaced by full range": (
        "percentile",
        lambda t: replace(t, value_range=(0, 4095)),
    ),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_comparison_catches_mutants(mutant: str) -> None:
    case, mutate = MUTANTS[mutant]
    image, card = CASES[case]
    wrong = replace(image, intensity=mutate(image.intensity))
    assert display_difference(wrong, card, image) > 5 * TOLERANCE


def test_letterbox_vs_stretch_is_caught() -> None:
    image, card = CASES["letterbox-tall"]
    stretched = preprocess(image, replace(card, preprocess=PreprocessSpec(resize="stretch")))
    expected = reference_display(image, card).transpose(2, 0, 1)
    assert np.abs(stretched - expected).max() > 5 * TOLERANCE


def test_mean_std_and_nhwc_match_reference() -> None:
    image, _ = CASES["rgb"]
    card = make_card(
        channels=3, layout="NHWC", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    fast = preprocess(image, card)
    expected = reference_preprocess(image, card)
    assert fast.shape == (224, 224, 3) and fast.flags.c_contiguous
    assert np.abs(fast - expected).max() <= TOLERANCE / min(card.preprocess.std)


def test_letterbox_padding_is_black_after_normalisation() -> None:
    image, _ = CASES["monochrome1"]  # inverted: padding must still be 0, not 1
    wide = replace(image, pixels=image.pixels[:1024])
    card = make_card(resize="letterbox", mean=(0.5,), std=(0.25,))
    tensor = preprocess(wide, card)
    assert tensor.shape == (1, 224, 224)
    np.testing.assert_allclose(tensor[0, :50], (0.0 - 0.5) / 0.25)
    np.testing.assert_allclose(tensor[0, -50:], (0.0 - 0.5) / 0.25)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_writes_into_out(layout: str) -> None:
    image, _ = CASES["grey-to-rgb"]
    card = make_card(channels=3, layout=layout, resize="letterbox")
    batch = np.full((2, 3, 224, 224), np.nan, np.float32)
    if layout == "NHWC":
        batch = np.full((2, 224, 224, 3), np.nan, np.float32)
    result = preprocess(image, card, out=batch[1])
    assert np.shares_memory(result, batch[1])
    np.testing.assert_array_equal(batch[1], preprocess(image, card))
    assert np.isnan(batch[0]).all()


def test_flat_image_with_percentile_window_is_black() -> None:
    flat = decoded(np.full((300, 300), 1000, np.uint16), IntensityTransform())
    assert not preprocess(flat, make_card()).any()


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (Window(100.0, 0.5), "LINEAR window width must be >= 1"),
        (Window(100.0, 0.0, "SIGMOID"), "SIGMOID window width must be > 0"),
        (Window(100.0, 10.0, "CUBIC"), "unsupported VOI LUT function"),
    ],
)
def test_unusable_windows_are_image_errors(window: Window, reason: str) -> None:
    image = decoded(np.zeros((100, 100), np.uint16), IntensityTransform(window=window))
    with pytest.raises(ImageError) as caught:
        preprocess(image, make_card())
    assert caught.value.code == ErrorCode.DICOM_INVALID
    assert caught.value.message == reason


def test_non_finite_float_samples_are_corrupt() -> None:
    pixels = radiograph(200, 200, 0, 1).copy()
    pixels[50, 50] = np.nan
    image = decoded(pixels, IntensityTransform(window=Window(0.5, 1.0)))
    with pytest.raises(ImageError) as caught:
        preprocess(image, make_card())
    assert caught.value.code == ErrorCode.CORRUPT_IMAGE


def test_four_samples_per_pixel_is_refused() -> None:
    image = png(np.zeros((100, 100, 4), np.uint8), 255)
    with pytest.raises(ImageError) as caught:
        preprocess(image, make_card())
    assert caught.value.code == ErrorCode.UNSUPPORTED_COLOR_MODE
