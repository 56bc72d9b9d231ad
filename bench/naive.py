"""The naive baseline: what a first script would do, one image at a time, in one process.

DICOM: ``dcmread`` + ``pixel_array``, then pydicom's float64 ``apply_modality_lut`` and
``apply_voi_lut`` on the full-size array (or a full-size percentile window when the file has
none), MONOCHROME1 inverted at full size. PNG/JPEG: Pillow decodes at full size (no draft),
to float64. Every image is then resized at the end by Pillow (bilinear, on a float image), and
fed to an ONNX Runtime session on the same model file, with one intra-op thread. Runs in a
spawned process with glibc's default malloc settings, as a plain script would.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import load_average, rate, stage_means

WARMUP_IMAGES = 2


def measure_naive(files: list[Path], model: str, model_root: Path) -> dict[str, Any]:
    context = mp.get_context("spawn")
    with context.Pool(1) as pool:
        report: dict[str, Any] = pool.apply(_run, ([str(p) for p in files], model, str(model_root)))
    return report


def _run(paths: list[str], model: str, model_root: str) -> dict[str, Any]:
    from pipeline.repository import ModelRepository

    loaded = ModelRepository(Path(model_root)).load(model)
    card = loaded.card
    session = _session(Path(loaded.path))
    items = [Path(p).read_bytes() for p in paths]
    for data in items[:WARMUP_IMAGES]:
        _infer(session, card, naive_input(data, card))
    load_before = load_average()
    timings, failed = [], 0
    started = time.perf_counter()
    for data in items:
        t0 = time.perf_counter()
        try:
            tensor = naive_input(data, card)
        except Exception:  # a file the naive path cannot read counts as failed, not skipped
            failed += 1
            continue
        t1 = time.perf_counter()
        _infer(session, card, tensor)
        t2 = time.perf_counter()
        timings.append({"decode+preprocess": (t1 - t0) * 1000, "inference": (t2 - t1) * 1000})
    seconds = time.perf_counter() - started
    return {
        "processes": 1,
        "intra_op_threads": 1,
        "images": len(items),
        "failed": failed,
        "seconds": round(seconds, 3),
        "images_per_s": rate(len(items), seconds),
        "stage_ms": stage_means(timings),
        "load_before": load_before,
        "load_after": load_average(),
    }


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    onnx = path / "model.onnx" if path.is_dir() else path
    return ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])


def _infer(session: Any, card: Any, tensor: np.ndarray) -> np.ndarray:
    batch = tensor[None, ...]
    output: np.ndarray = session.run([card.output.name], {card.input.name: batch})[0]
    return output


def naive_input(data: bytes, card: Any) -> np.ndarray:
    """The model input (float32, no batch axis) by the naive full-resolution route."""
    display = _dicom_display(data) if data[128:132] == b"DICM" else _raster_display(data)
    small = np.asarray(
        _pil_image(display).resize((card.input.width, card.input.height), _bilinear()),
        dtype=np.float32,
    )
    channels = np.repeat(small[None, :, :], card.input.channels, axis=0)
    mean = np.asarray(card.preprocess.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(card.preprocess.std, np.float32).reshape(-1, 1, 1)
    tensor = (channels - mean) / std
    if card.input.layout == "NHWC":
        tensor = tensor.transpose(1, 2, 0)
    return np.ascontiguousarray(tensor, dtype=np.float32)


def _dicom_display(data: bytes) -> np.ndarray:
    """Full-size float64 display intensities on [0, 1] through pydicom's LUT functions."""
    from pydicom import dcmread
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = dcmread(BytesIO(data), force=True)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        values = apply_voi_lut(values, ds)
        low, high = float(values.min()), float(values.max())
    else:
        low, high = np.percentile(values, (0.5, 99.5))
    span = high - low if high > low else 1.0
    display = np.clip((values - low) / span, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        display = 1.0 - display
    return display


def _raster_display(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(BytesIO(data))
    image.load()
    if image.mode not in ("L", "I", "I;16", "I;16B", "I;16L"):
        image = image.convert("L")
    values = np.asarray(image, dtype=np.float64)
    return values / (255.0 if image.mode == "L" else 65535.0)


def _pil_image(display: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(display.astype(np.float32), mode="F")


def _bilinear() -> Any:
    from PIL import Image

    return Image.Resampling.BILINEAR
