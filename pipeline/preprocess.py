"""A decoded image -> the model's input tensor, reducing first and transforming after.

The expensive part of preprocessing is touching every pixel of a 2048x2048 image. Here that
happens once, in integer arithmetic (:func:`pipeline.reduce.area_resize`); rescale, window,
inversion, channel handling and normalisation then run on the small image in float32
(:mod:`pipeline.intensity`). The plain float64 full-resolution order (transform, then resize)
lives in the tests as the reference this path must stay within 0.02 of.
"""

from __future__ import annotations

import numpy as np

from pipeline.card import InputSpec, ModelCard
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage
from pipeline.intensity import to_display
from pipeline.reduce import area_resize

# ITU-R BT.601 luma weights, as Pillow's RGB -> "L" conversion uses.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def preprocess(
    image: DecodedImage, card: ModelCard, *, out: np.ndarray | None = None
) -> np.ndarray:
    """The model's input for one image, without the batch axis.

    Parameters
    ----------
    image : DecodedImage
        Stored values (greyscale ``(rows, columns)`` or RGB ``(rows, columns, 3)``) and their
        intensity transform.
    card : ModelCard
        Input size, channels and layout; resize mode ("stretch" or "letterbox": aspect kept,
        padded with intensity 0, i.e. black after windowing); percentiles; mean and std.
    out : numpy.ndarray, optional
        float32 array of the returned shape to write into (e.g. one row of a batch buffer), so
        no large array is allocated per image.

    Returns
    -------
    numpy.ndarray
        float32, ``(channels, height, width)`` for NCHW or ``(height, width, channels)`` for
        NHWC: ``(display - mean) / std`` per channel, display intensity on [0, 1].

    Raises
    ------
    ImageError
        For a sample layout or intensity transform that cannot be used (see
        :func:`pipeline.intensity.apply_window`).
    """
    spec = card.input
    pixels = image.pixels
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3)):
        raise ImageError(ErrorCode.UNSUPPORTED_COLOR_MODE, "expected 1 or 3 samples per pixel")
    top, left, height, width = _placement(pixels.shape[:2], spec, card.preprocess.resize)
    planes = area_resize(pixels, height, width)  # (c, height, width), stored units
    if pixels.dtype.kind == "f" and not np.isfinite(planes).all():
        raise ImageError(ErrorCode.CORRUPT_IMAGE, "sample values include NaN or infinity")
    to_display(planes, image.intensity, card.preprocess.percentiles)
    planar = (spec.channels, spec.height, spec.width)
    # NCHW is written straight into `out`; NHWC is built planar and transposed at the end.
    canvas = out if out is not None and spec.layout == "NCHW" else np.empty(planar, np.float32)
    if (height, width) != (spec.height, spec.width):
        canvas.fill(0.0)  # letterbox padding: intensity 0 after windowing
    inner = canvas[:, top : top + height, left : left + width]
    _match_channels(planes, inner)
    _normalise(canvas, card)
    if spec.layout == "NCHW":
        return canvas
    if out is None:
        return np.ascontiguousarray(canvas.transpose(1, 2, 0))
    np.copyto(out, canvas.transpose(1, 2, 0))
    return out


def _placement(shape: tuple[int, ...], spec: InputSpec, resize: str) -> tuple[int, int, int, int]:
    """Top, left, height and width of the image inside the ``spec.height x spec.width`` input.

    "stretch" fills the input; "letterbox" scales by the smaller ratio and centres the result.
    """
    if resize == "stretch":
        return 0, 0, spec.height, spec.width
    rows, columns = shape
    scale = min(spec.height / rows, spec.width / columns)
    height = min(spec.height, max(1, round(rows * scale)))
    width = min(spec.width, max(1, round(columns * scale)))
    return (spec.height - height) // 2, (spec.width - width) // 2, height, width


def _match_channels(planes: np.ndarray, inner: np.ndarray) -> None:
    """Copy ``planes`` (c, h, w) into ``inner`` (C, h, w): grey is replicated, RGB -> luma."""
    if planes.shape[0] == inner.shape[0] or planes.shape[0] == 1:
        np.copyto(inner, planes)  # broadcasts one grey plane to three
    else:
        np.einsum("c,chw->hw", LUMA, planes, out=inner[0])


def _normalise(canvas: np.ndarray, card: ModelCard) -> None:
    """``(x - mean) / std`` per channel, in place, on ``canvas`` (C, H, W)."""
    mean = np.asarray(card.preprocess.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(card.preprocess.std, np.float32).reshape(-1, 1, 1)
    if np.any(mean != 0):
        canvas -= mean
    if np.any(std != 1):
        canvas *= np.float32(1.0) / std
