"""The single entry point from bytes to a :class:`~pipeline.image.DecodedImage`.

Whatever the bytes are, the only exception that leaves :func:`decode_image` is
:class:`~pipeline.errors.ImageError`: a broken image is a failed result row, never a crashed
worker or a failed job. Interruptions (Ctrl-C, exit, a Celery time limit) pass through as they
are, even when they strike inside a decoder that turns its own failures into ImageError.
"""

from __future__ import annotations

import warnings

import numpy as np

from pipeline.dicom import decode_dicom
from pipeline.errors import ErrorCode, ImageError
from pipeline.image import DecodedImage, ImageFormat
from pipeline.limits import ImageLimits
from pipeline.raster import decode_raster
from pipeline.sniff import sniff_format

DEFAULT_LIMITS = ImageLimits()
_TIME_LIMITS = frozenset({"SoftTimeLimitExceeded", "TimeLimitExceeded"})
# What preprocessing accepts (see DecodedImage.pixels).
SAMPLE_TYPES = frozenset(np.dtype(t) for t in ("uint8", "uint16", "int16", "float32", "float64"))


def decode_image(
    data: bytes,
    limits: ImageLimits = DEFAULT_LIMITS,
    *,
    draft_size: tuple[int, int] | None = None,
    reduce_jpeg2000: bool = False,
) -> DecodedImage:
    """Decode DICOM, PNG or JPEG bytes into stored samples and their intensity rules.

    Parameters
    ----------
    data : bytes
        The whole file; its format is sniffed from the content, never from a name.
    limits : ImageLimits, optional
        Byte size, sides and pixel count, all checked before pixels are decoded.
    draft_size : (int, int), optional
        ``(rows, columns)`` the caller will reduce to; lets a JPEG decode at reduced scale.
    reduce_jpeg2000 : bool
        Let a DICOM JPEG 2000 frame decode at a reduced resolution level too (never below
        ``draft_size``). Not exact: only for a model whose card allows it.

    Returns
    -------
    DecodedImage
        ``pixels`` of dtype uint8, uint16, int16, float32 or float64, shape ``(H, W)`` or
        ``(H, W, 3)``.

    Raises
    ------
    ImageError
        Always, and only, when the image cannot be used; see ``docs/error-codes.md``.
    """
    if not data:
        raise ImageError(ErrorCode.EMPTY_FILE, "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(
            ErrorCode.FILE_TOO_LARGE,
            f"the file is {len(data)} bytes, over the limit of {limits.max_bytes}",
            size_bytes=len(data),
            max_bytes=limits.max_bytes,
        )
    fmt = sniff_format(data)
    try:
        with warnings.catch_warnings():
            # Decoder warnings are noise per image; whatever matters becomes an ImageError.
            warnings.simplefilter("ignore")
            image = _decode(data, fmt, limits, draft_size, reduce_jpeg2000)
    except BaseException as exc:  # pyo3 codecs panic with a BaseException
        cause = exc.__cause__ if isinstance(exc, ImageError) else exc
        if cause is not None and is_interruption(cause):
            raise cause from None
        if isinstance(exc, ImageError):
            raise
        raise ImageError(
            ErrorCode.CORRUPT_IMAGE,
            f"the {fmt.name} file cannot be decoded ({type(exc).__name__})",
        ) from exc
    _check_sample_type(image.pixels)
    return image


def is_interruption(exc: BaseException) -> bool:
    """Is ``exc`` an interruption of the process rather than the image's fault?

    Ctrl-C, exit, and time limits that a signal handler raises inside whatever code runs (the
    decoders' catch-alls included): Celery's SoftTimeLimitExceeded is an Exception, known here
    by name so that ``pipeline`` stays free of Celery.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return True
    return any(cls.__name__ in _TIME_LIMITS for cls in type(exc).__mro__)


def _decode(
    data: bytes,
    fmt: ImageFormat,
    limits: ImageLimits,
    draft_size: tuple[int, int] | None,
    reduce_jpeg2000: bool,
) -> DecodedImage:
    if fmt is ImageFormat.DICOM:
        return decode_dicom(data, limits, draft_size=draft_size if reduce_jpeg2000 else None)
    return decode_raster(data, fmt, limits, draft_size=draft_size)


def _check_sample_type(pixels: np.ndarray) -> None:
    if pixels.dtype not in SAMPLE_TYPES:
        raise ImageError(
            ErrorCode.UNSUPPORTED_SAMPLE_TYPE,
            f"{pixels.dtype.name} samples are not supported",
            dtype=pixels.dtype.name,
        )
