"""Area reduction of stored sample values: the one full-resolution step of preprocessing.

A 2048x2048 image becomes 224x224 in two steps, both on the stored values (no intensity
transform has run yet, see :mod:`pipeline.image`):

1. block sums: ``k x k`` blocks (``k`` about the footprint of one output pixel, see
   :func:`_block`) summed into an exact integer accumulator with strided adds, which read the
   full image once, in row order;
2. an area resample of the (slightly larger) block grid to the target size, with a few taps
   per output pixel, on arrays of about 50,000 values.

Within a block the values are treated as uniform, so when ``source / target`` is not an integer
the result differs from an exact area average where an output pixel's footprint cuts a block,
by at most about (local gradient x block width / 4); the preprocessing tests bound the end
result against a full-resolution reference. No BLAS call is made: a small matrix product would
start OpenBLAS threads, which on a busy two-core worker cost ten times the work.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

# Accumulators are reused per thread: a fresh 2 MB array per image costs more in page faults
# (see DESIGN.md, glibc mmap threshold) than the additions into it.
_WORKSPACE = threading.local()


def area_resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mean stored value over each output pixel's footprint, as channel planes.

    Parameters
    ----------
    pixels : numpy.ndarray
        Stored values, shape ``(rows, columns)`` or ``(rows, columns, channels)``; any integer
        or floating dtype; any strides.
    height, width : int
        Output size in pixels (both >= 1). Reduction averages each output pixel's footprint;
        enlargement (per axis) takes the source pixel under the output pixel's centre.

    Returns
    -------
    numpy.ndarray
        float32, C-contiguous, shape ``(channels, height, width)`` (``channels`` is 1 for a 2-D
        input), in stored-value units (no rescale or window applied).
    """
    interleaved = pixels if pixels.ndim == 3 else pixels[:, :, None]
    rows, columns = interleaved.shape[:2]
    k_rows, k_cols = _block(rows, height), _block(columns, width)
    acc_type = _accumulator_type(pixels.dtype, k_rows * k_cols)
    # Rows first on the interleaved array (contiguous runs of columns x channels), then columns
    # on a planar view of the 9x smaller result: numpy adds runs of 3 interleaved values slowly.
    partial = _sum_axis(interleaved, k_rows, 0, acc_type, "rows")
    sums = _sum_axis(partial.transpose(2, 0, 1), k_cols, 2, acc_type, "columns")
    planes = sums.astype(np.float32, order="C")
    planes = _resample_axis(planes, _taps(rows, height, k_rows), axis=1)
    return _resample_axis(planes, _taps(columns, width, k_cols), axis=2)


def _block(length: int, target: int) -> int:
    """Block size along one axis for a reduction from ``length`` to ``target`` pixels.

    One block per output pixel when a footprint spans 8 or more pixels (2048 -> 224): the
    footprint averages away the noise that a block cut misplaces, and this is the hot path.
    For smaller footprints, two blocks per output pixel halve that error; such images are
    small, so the extra pass costs little.
    """
    scale = length / target
    return max(1, int(scale) if scale >= 8 else int(scale / 2))


def _sum_axis(src: np.ndarray, k: int, axis: int, acc_type: np.dtype, slot: str) -> np.ndarray:
    """Sums of ``k`` consecutive entries along ``axis``; the last sum may cover fewer.

    Returns ``src`` itself when ``k == 1``, else a reused per-thread buffer (exact integer or
    float64) whose ``axis`` has length ``ceil(src.shape[axis] / k)``.
    """
    if k == 1:
        return src
    length = src.shape[axis]
    full = length // k
    shape = list(src.shape)
    shape[axis] = -(-length // k)
    acc = _buffer(slot, tuple(shape), acc_type)
    head = _along(acc, axis, slice(0, full))
    # Strided views: each pass reads every k-th row (or column) and adds it in place, so the
    # source is read once, without an intermediate copy.
    np.copyto(head, _along(src, axis, slice(0, full * k, k)), casting="unsafe")
    for offset in range(1, k):
        np.add(head, _along(src, axis, slice(offset, full * k, k)), out=head, casting="unsafe")
    if full < shape[axis]:
        tail = _along(src, axis, slice(full * k, length))
        np.sum(tail, axis=axis, dtype=acc_type, out=_along(acc, axis, full))
    return acc


def _along(array: np.ndarray, axis: int, index: slice | int) -> np.ndarray:
    return array[(slice(None),) * axis + (index,)]


def _accumulator_type(dtype: np.dtype, count: int) -> np.dtype:
    """The narrowest exact accumulator for ``count`` samples of ``dtype``."""
    if dtype.kind == "f":
        return np.dtype(np.float64)
    info = np.iinfo(dtype)
    # Narrow accumulators halve the memory traffic of the full-resolution pass (8-bit data).
    candidates = (np.int16, np.int32) if info.min < 0 else (np.uint16, np.uint32)
    for candidate in candidates:
        fits = np.iinfo(candidate)
        if fits.bits >= info.bits and info.max * count <= fits.max and info.min * count >= fits.min:
            return np.dtype(candidate)
    return np.dtype(np.int64 if info.min < 0 else np.uint64)


def _buffer(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    buffers: dict[str, np.ndarray] = _WORKSPACE.__dict__.setdefault("buffers", {})
    buffer = buffers.get(slot)
    size = int(np.prod(shape))
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = np.empty(size, dtype)
        buffers[slot] = buffer
    return buffer[:size].reshape(shape)


def _resample_axis(
    values: np.ndarray, taps: tuple[np.ndarray, np.ndarray], axis: int
) -> np.ndarray:
    """Weighted sum of a few gathered rows (or columns) per output row (or column)."""
    index, weight = taps
    shape = [1] * values.ndim
    shape[axis] = -1
    out: np.ndarray | None = None
    for tap in range(index.shape[0]):
        term = np.take(values, index[tap], axis=axis)
        term *= weight[tap].reshape(shape)
        out = term if out is None else np.add(out, term, out=out)
    assert out is not None
    return out


@lru_cache(maxsize=64)
def _taps(length: int, target: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Area weights from blocks of ``k`` source pixels to ``target`` output pixels.

    Output pixel ``j`` covers source ``[j * s, (j + 1) * s)`` with ``s = length / target``;
    block ``i`` covers ``[i * k, min((i + 1) * k, length))`` and holds a *sum* of ``n_i``
    pixels, so its weight is ``overlap / (s * n_i)``. Returns ``index`` (int64) and ``weight``
    (float32), both shape ``(taps, target)``; unused taps have weight 0.
    """
    scale = length / target
    if scale < 1:
        # Enlarging (an image smaller than the model input, rare): the pixel under the output
        # pixel's centre, as Pillow's box filter does; interpolating would not add detail.
        nearest = np.minimum(((np.arange(target) + 0.5) * scale).astype(np.int64), length - 1)
        return _frozen(nearest[None, :], np.ones((1, target), np.float32))
    blocks = -(-length // k)
    starts = np.arange(blocks) * k
    ends = np.minimum(starts + k, length)
    lo = np.arange(target) * scale
    hi = lo + scale
    first = np.minimum((lo // k).astype(np.int64), blocks - 1)
    last = np.minimum(np.ceil(hi / k).astype(np.int64) - 1, blocks - 1)
    count = int((last - first).max()) + 1
    index = np.minimum(first[None, :] + np.arange(count)[:, None], blocks - 1)
    overlap = np.minimum(hi, ends[index]) - np.maximum(lo, starts[index])
    valid = (first[None, :] + np.arange(count)[:, None]) <= last
    weight = np.where(valid, np.clip(overlap, 0, None), 0) / (scale * (ends - starts)[index])
    return _frozen(index, weight.astype(np.float32))


def _frozen(index: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Cached and shared between calls (and threads): make accidental writes fail loudly.
    index.flags.writeable = False
    weight.flags.writeable = False
    return index, weight
