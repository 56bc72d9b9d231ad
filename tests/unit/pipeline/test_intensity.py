"""Rescale, VOI functions (DICOM PS3.3 C.11.2.1.2.1, C.11.2.1.3) and inversion on known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.image import IntensityTransform, Window
from pipeline.intensity import apply_window, to_display


def windowed(values: list[float], window: Window) -> list[float]:
    array = np.asarray(values, np.float32)
    return [float(v) for v in apply_window(array, window)]


def test_linear_follows_the_standard_edges() -> None:
    # c=40, w=400: y=0 at x <= 40 - 0.5 - 199.5 = -160, y=1 above 239.5, 0.5 at c - 0.5.
    out = windowed([-1000, -160, 39.5, 239.5, 239.6, 3000], Window(40, 400))
    assert out[:2] == [0.0, 0.0] and out[4:] == [1.0, 1.0]
    assert out[2] == pytest.approx(0.5) and out[3] == pytest.approx(1.0)


def test_linear_width_one_is_a_step() -> None:
    assert windowed([99.4, 99.5, 99.6], Window(100, 1)) == [0.0, 0.0, 1.0]


def test_linear_exact() -> None:
    out = windowed([-1000, 0, 100, 200, 1000], Window(100, 200, "LINEAR_EXACT"))
    assert out == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_sigmoid() -> None:
    out = windowed([100, 150, -1e9, 1e9], Window(100, 200, "SIGMOID"))
    # x = c + w/4: 1 / (1 + exp(-4 * 50 / 200)) = 1 / (1 + e^-1)
    assert out == pytest.approx([0.5, 1 / (1 + math.exp(-1)), 0.0, 1.0], abs=1e-6)


def test_rescale_then_window_then_invert() -> None:
    stored = np.asarray([0, 1000, 2000], np.float32)  # modality: -1024, 976, 2976
    transform = IntensityTransform(
        slope=2.0, intercept=-1024, window=Window(976, 4000, "LINEAR_EXACT"), invert=True
    )
    out = to_display(stored, transform, (0.5, 99.5))
    assert out.tolist() == pytest.approx([1.0 - 0.0, 0.5, 1.0 - 1.0])


def test_value_range_and_percentile_window() -> None:
    values = np.arange(101, dtype=np.float32)
    ranged = to_display(values.copy(), IntensityTransform(value_range=(0, 200)), (0, 100))
    assert ranged[[0, 100]].tolist() == [0.0, 0.5]
    robust = to_display(values.copy(), IntensityTransform(), (10, 90))
    assert robust[[0, 10, 50, 90, 100]].tolist() == pytest.approx([0, 0, 0.5, 1, 1])
