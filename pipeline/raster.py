"""Decode a PNG or JPEG (Pillow) into its stored samples, checking its size before decoding.

Colour modes are reduced to three shapes: grey ``(H, W)`` uint8 or uint16, and RGB
``(H, W, 3)`` uint8. Choices:

- Alpha (LA, RGBA, PA, palette with transparency) is composited onto black, then dropped: a
  transparent margin around an exported radiograph is background, and background in a
  MONOCHROME2 radiograph is black (air). White would invent bright borders.
- A palette whose entries are all grey decodes to grey, any other palette to RGB.
- 1-bit images decode to 0 and 255 in uint8.
- CMYK JPEG is refused (``UNSUPPORTED_COLOR_MODE``): no radiograph is CMYK, and a naive
  conversion is wrong for Adobe's inverted CMYK.
- Pillow reads 16-bit RGB PNG as 8-bit RGB; 16-bit grey PNG stays uint16.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

from pipeline.errors import ErrorCode, ImageError
from pipeline.guards import check_dimensions
from pipeline.image import DecodedImage, ImageFormat, IntensityTransform
from pipeline.limits import ImageLimits

_ORIENTATION_TAG = 0x0112  # EXIF Orientation
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}
_GREY16 = {"I;16", "I;16L", "I;16B"}
_SUPPORTED = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "YCbCr", "I"} | _GREY16


def decode_raster(
    data: bytes,
    fmt: ImageFormat,
    limits: ImageLimits,
    *,
    draft_size: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode a PNG or JPEG to its stored samples.

    Parameters
    ----------
    data : bytes
        The whole file.
    fmt : ImageFormat
        ``PNG`` or ``JPEG``, as sniffed; Pillow is only allowed that format.
    limits : ImageLimits
        Checked on the header's size before decoding; Pillow's own decompression-bomb guard
        is set to ``limits.max_pixels`` too.
    draft_size : (int, int), optional
        ``(rows, columns)`` the caller will reduce to. A JPEG is then decoded by libjpeg at
        1/2, 1/4 or 1/8 scale, never below this size (``Image.draft``). Ignored for PNG.

    Returns
    -------
    DecodedImage
        ``pixels`` is ``(H, W)`` uint8 or uint16 grey, or ``(H, W, 3)`` uint8 RGB, upright
        (EXIF orientation applied to JPEG). ``width`` and ``height`` are the full stored
        size, upright, even when the array was drafted smaller. ``intensity.value_range``
        is the full range of the sample type.
    """
    image = _open(data, fmt, limits)
    check_dimensions(image.width, image.height, limits)
    mode = image.mode
    if mode not in _SUPPORTED:
        raise ImageError(
            ErrorCode.UNSUPPORTED_COLOR_MODE, f"{fmt.name} colour mode {mode} is not supported"
        )
    orientation = _orientation(image) if fmt is ImageFormat.JPEG else 1
    width, height = image.size
    if orientation in _SWAPS_AXES:
        width, height = height, width
    if draft_size is not None and fmt is ImageFormat.JPEG:
        rows, columns = draft_size
        stored_target = (rows, columns) if orientation in _SWAPS_AXES else (columns, rows)
        image.draft(mode, stored_target)
    _load(image, fmt)
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    pixels = _samples(image)
    facts: dict[str, str | int | float] = {"mode": mode, "bits": 8 * pixels.dtype.itemsize}
    if orientation != 1:
        facts["exif_orientation"] = orientation
    top = float(np.iinfo(pixels.dtype).max)
    return DecodedImage(
        pixels=pixels,
        format=fmt,
        width=width,
        height=height,
        intensity=IntensityTransform(value_range=(0.0, top)),
        facts=facts,
    )


def _open(data: bytes, fmt: ImageFormat, limits: ImageLimits) -> Image.Image:
    """Parse the header only; Pillow decodes nothing until ``load()``."""
    # Pillow's guard (a warning over MAX_IMAGE_PIXELS, an error over twice that) follows ours,
    # so a deployment's limit is not undercut by Pillow's default of about 89 megapixels.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        return Image.open(BytesIO(data), formats=[fmt.name])
    except Image.DecompressionBombError as exc:
        raise ImageError(
            ErrorCode.DECOMPRESSION_BOMB,
            f"the {fmt.name} header declares more than {limits.max_pixels} pixels",
            max_pixels=limits.max_pixels,
        ) from exc
    except Exception as exc:  # UnidentifiedImageError, and anything a broken header raises
        raise ImageError(
            ErrorCode.CORRUPT_IMAGE, f"the {fmt.name} header cannot be read ({type(exc).__name__})"
        ) from exc


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in _UPRIGHT else 1
    except Exception:  # a broken EXIF block is not a broken image: keep it as stored
        return 1


def _load(image: Image.Image, fmt: ImageFormat) -> None:
    try:
        image.load()
    except OSError as exc:
        # Pillow's only signal for a short file is its message ("image file is truncated",
        # "Truncated File Read"); anything else is a broken stream.
        if "truncated" in str(exc).lower():
            raise ImageError(ErrorCode.TRUNCATED_FILE, f"the {fmt.name} data ends early") from exc
        raise ImageError(
            ErrorCode.CORRUPT_IMAGE, f"the {fmt.name} data cannot be decoded ({exc})"
        ) from exc
    except Exception as exc:  # SyntaxError, ValueError, zlib.error...
        raise ImageError(
            ErrorCode.CORRUPT_IMAGE,
            f"the {fmt.name} data cannot be decoded ({type(exc).__name__})",
        ) from exc


def _samples(image: Image.Image) -> np.ndarray:
    """The loaded image's samples as ``(H, W)`` grey or ``(H, W, 3)`` RGB, alpha composited."""
    mode = image.mode
    if mode == "P":
        transparent = "transparency" in image.info
        image = image.convert("RGBA" if transparent else "L" if _grey_palette(image) else "RGB")
    elif mode in ("PA", "YCbCr", "1"):
        image = image.convert({"PA": "RGBA", "YCbCr": "RGB", "1": "L"}[mode])
    pixels = np.asarray(image)
    if image.mode in ("LA", "RGBA"):
        return _on_black(pixels)
    if mode in _GREY16 or image.mode == "I":
        return _as_uint16(pixels)
    return pixels


def _grey_palette(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))


def _on_black(pixels: np.ndarray) -> np.ndarray:
    """Composite straight-alpha uint8 samples onto black: ``round(colour * alpha / 255)``."""
    colour, alpha = pixels[..., :-1].astype(np.uint16), pixels[..., -1:].astype(np.uint16)
    out = ((colour * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _as_uint16(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype.kind == "u" and pixels.dtype.itemsize == 2:
        return pixels if pixels.dtype.isnative else pixels.astype(np.uint16)
    # Pillow's "I" mode is int32; from PNG it only ever holds 16-bit grey values.
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise ImageError(ErrorCode.UNSUPPORTED_SAMPLE_TYPE, "32-bit integer samples")
    return pixels.astype(np.uint16)
