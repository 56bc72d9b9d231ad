"""PNG and JPEG decoding: modes, alpha, EXIF orientation and reduced-size JPEG decoding."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline.decode import decode_image
from pipeline.image import ImageFormat

ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(rows: int = 96, columns: int = 128) -> np.ndarray:
    """uint8 ramp with a different value in every column: orientation errors cannot hide."""
    ramp = np.linspace(0, 255, columns).round().astype(np.uint8)
    return np.repeat(ramp[None, :], rows, axis=0)


def test_png_grey_8_bit():
    pixels = gradient()
    image = decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert image.format is ImageFormat.PNG
    assert image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, pixels)
    assert (image.width, image.height) == (128, 96)
    assert image.intensity.value_range == (0.0, 255.0)
    assert image.intensity.window is None
    assert image.facts == {"mode": "L", "bits": 8}


def test_png_grey_16_bit_stays_16_bit():
    pixels = (np.arange(96 * 128, dtype=np.uint16).reshape(96, 128) * 5).astype(np.uint16)
    image = decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert image.pixels.dtype == np.uint16
    assert image.pixels.dtype.isnative
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.intensity.value_range == (0.0, 65535.0)


def test_png_rgb():
    pixels = np.stack([gradient(), gradient()[:, ::-1], np.full((96, 128), 7, np.uint8)], -1)
    image = decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert image.pixels.shape == (96, 128, 3)
    np.testing.assert_array_equal(image.pixels, pixels)


def test_png_colour_palette_becomes_rgb():
    indices = (np.arange(96 * 128) % 3).astype(np.uint8).reshape(96, 128)
    palette = Image.fromarray(indices, "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    image = decode_image(encode(palette, "PNG"))
    assert image.pixels.shape == (96, 128, 3)
    assert image.pixels[0, :3].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_png_grey_palette_becomes_grey():
    indices = (np.arange(96 * 128) % 3).astype(np.uint8).reshape(96, 128)
    palette = Image.fromarray(indices, "P")
    palette.putpalette([0, 0, 0, 100, 100, 100, 250, 250, 250])
    image = decode_image(encode(palette, "PNG"))
    assert image.pixels.shape == (96, 128)
    assert image.pixels[0, :3].tolist() == [0, 100, 250]


def test_png_alpha_is_composited_onto_black():
    grey = np.full((96, 128), 200, np.uint8)
    alpha = np.zeros((96, 128), np.uint8)
    alpha[:, 64:] = 255
    alpha[:, 32:64] = 128
    image = decode_image(encode(Image.fromarray(np.stack([grey, alpha], -1), "LA"), "PNG"))
    assert image.pixels.shape == (96, 128)
    assert image.pixels[0, [0, 40, 100]].tolist() == [0, 100, 200]  # 200 * 128 / 255 = 100.4


def test_png_rgba_is_composited_onto_black():
    rgba = np.zeros((96, 128, 4), np.uint8)
    rgba[..., :3] = (255, 128, 10)
    rgba[:, 64:, 3] = 255
    image = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert image.pixels.shape == (96, 128, 3)
    assert image.pixels[0, 0].tolist() == [0, 0, 0]
    assert image.pixels[0, 100].tolist() == [255, 128, 10]


def test_png_palette_with_transparency_is_composited():
    indices = np.zeros((96, 128), np.uint8)
    indices[:, 64:] = 1
    palette = Image.fromarray(indices, "P")
    palette.putpalette([255, 255, 255, 30, 60, 90])
    image = decode_image(encode(palette, "PNG", transparency=0))  # index 0 is transparent
    assert image.pixels[0, 0].tolist() == [0, 0, 0]
    assert image.pixels[0, 100].tolist() == [30, 60, 90]


def test_png_1_bit_becomes_0_and_255():
    bits = gradient() > 127
    image = decode_image(encode(Image.fromarray(bits), "PNG"))
    assert image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, bits.astype(np.uint8) * 255)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_grey_and_rgb(mode):
    source = Image.fromarray(gradient()).convert(mode)
    image = decode_image(encode(source, "JPEG", quality=95))
    assert image.format is ImageFormat.JPEG
    assert image.pixels.shape == np.asarray(source).shape
    assert np.abs(image.pixels.astype(int) - np.asarray(source)).max() <= 4
    assert image.intensity.value_range == (0.0, 255.0)


def _with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    source = Image.fromarray(pixels)
    exif = source.getexif()
    exif[ORIENTATION] = orientation
    return encode(source, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("orientation", "upright"),
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored rotated 90 degrees anticlockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_jpeg_exif_orientation_is_applied(orientation, upright):
    pixels = gradient()
    image = decode_image(_with_orientation(pixels, orientation))
    expected = upright(pixels)
    assert image.pixels.shape == expected.shape
    assert (image.height, image.width) == expected.shape
    assert np.abs(image.pixels.astype(int) - expected).max() <= 4
    assert image.facts.get("exif_orientation", 1) == orientation


def test_jpeg_draft_reduces_the_array_but_keeps_the_stored_size():
    source = Image.fromarray(np.tile(gradient(96, 128), (8, 8)))  # 768 x 1024
    data = encode(source, "JPEG", quality=90)
    image = decode_image(data, draft_size=(224, 224))
    rows, columns = image.pixels.shape
    assert (rows, columns) == (384, 512)  # 1/2: 1/4 would give 192 rows, under 224
    assert (image.height, image.width) == (768, 1024)
    small = decode_image(data, draft_size=(96, 128))
    assert small.pixels.shape == (96, 128)  # 1/8
    assert decode_image(data).pixels.shape == (768, 1024)


def test_jpeg_draft_follows_the_exif_orientation():
    pixels = np.tile(gradient(96, 128), (8, 4))  # stored 768 x 512, upright 512 x 768
    image = decode_image(_with_orientation(pixels, 6), draft_size=(256, 384))
    assert image.pixels.shape == (256, 384)  # 1/2 of the upright image, not of the stored one
    assert (image.height, image.width) == (512, 768)


def test_png_ignores_draft():
    data = encode(Image.fromarray(np.tile(gradient(), (4, 4))), "PNG")
    assert decode_image(data, draft_size=(64, 64)).pixels.shape == (384, 512)
