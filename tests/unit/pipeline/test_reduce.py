"""Area reduction: exact on block-constant images, any dtype, no overflow, thread-safe buffers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.reduce import area_resize


def exact_area(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """float64 (C, height, width): each output pixel the exact mean over its footprint."""
    values = values.astype(np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
    rows = footprint_weights(values.shape[0], height)
    columns = footprint_weights(values.shape[1], width)
    return np.stack([rows @ values[:, :, z] @ columns.T for z in range(values.shape[2])])


def footprint_weights(length: int, target: int) -> np.ndarray:
    scale = length / target
    weights = np.zeros((target, length))
    for j in range(target):
        low, high = j * scale, (j + 1) * scale
        for i in range(int(low), min(length, int(np.ceil(high)))):
            weights[j, i] = max(0.0, min(high, i + 1) - max(low, i))
    return weights / scale


def block_constant(blocks: tuple[int, ...], k: int, dtype: type[np.generic]) -> np.ndarray:
    """Random values, each repeated over a k x k block: block sums lose nothing."""
    rng = np.random.default_rng(k)
    info = np.iinfo(np.dtype(dtype)) if np.issubdtype(dtype, np.integer) else None
    low, high = (info.min, info.max) if info else (-1000.0, 1000.0)
    base = rng.uniform(low, high, blocks).astype(dtype)
    return np.repeat(np.repeat(base, k, axis=0), k, axis=1)


@pytest.mark.parametrize(
    ("blocks", "k", "dtype", "size"),
    [
        ((228, 228), 9, np.uint16, (224, 224)),  # 2052 -> 224, one block per output pixel
        ((40, 30), 9, np.int16, (37, 29)),  # signed, non-square, last block short
        ((64, 48), 10, np.uint8, (60, 40)),
        ((70, 50, 3), 9, np.uint8, (64, 48)),  # interleaved RGB
        ((50, 50), 9, np.float32, (48, 49)),
        ((30, 40), 3, np.float64, (60, 50)),  # footprint < 8 pixels: blocks of 1 (exact)
    ],
)
def test_exact_on_block_constant_images(
    blocks: tuple[int, ...], k: int, dtype: type[np.generic], size: tuple[int, int]
) -> None:
    pixels = block_constant(blocks, k, dtype)
    reduced = area_resize(pixels, *size)
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    assert reduced.shape == (channels, *size) and reduced.dtype == np.float32
    assert reduced.flags.c_contiguous
    scale = float(np.abs(pixels).max()) or 1.0
    np.testing.assert_allclose(reduced, exact_area(pixels, *size), rtol=0, atol=2e-6 * scale)


def test_sums_do_not_overflow() -> None:
    for value, dtype in ((65535, np.uint16), (-32768, np.int16), (255, np.uint8)):
        pixels = np.full((2048, 2048), value, dtype)
        assert area_resize(pixels, 1, 1).item() == pytest.approx(value, rel=1e-6)
        np.testing.assert_allclose(area_resize(pixels, 7, 5), value, rtol=1e-6)


def test_enlarging_takes_the_pixel_under_the_centre() -> None:
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    enlarged = area_resize(pixels, 6, 8)[0]
    np.testing.assert_array_equal(enlarged, np.repeat(np.repeat(pixels, 2, 0), 2, 1))


def test_strided_and_single_channel_inputs() -> None:
    pixels = block_constant((60, 60), 9, np.uint16)
    expected = area_resize(pixels.copy(), 50, 50)
    np.testing.assert_array_equal(area_resize(pixels[:, :, None], 50, 50), expected)
    flipped = np.ascontiguousarray(pixels[::-1])
    np.testing.assert_array_equal(area_resize(flipped[::-1], 50, 50), expected)


def test_results_survive_buffer_reuse_across_threads() -> None:
    images = [block_constant((228, 228), 9, np.uint16) + i for i in range(6)]
    expected = [exact_area(image, 224, 224) for image in images]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda image: area_resize(image, 224, 224), images * 3))
    for index, result in enumerate(results):
        np.testing.assert_allclose(result, expected[index % 6], rtol=0, atol=0.15)
