"""Image-side speed on this machine: decode + preprocess per format, inference per bundled model.

`python -m bench.pipeline_speed` (or `make bench-pipeline`) prints two tables: the median
milliseconds to decode and to preprocess one 2048x2048 image (3000x2500 for one DICOM case) to
the DenseNet card's 224x224 input, per storage variant (JPEG 2000 both in full and at the
reduced resolution the card allows); and images/s of each bundled model on one process with one
intra-op thread (DESIGN.md: processes x 1 thread is the fast shape here).
Figures, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from bench.synthetic import render_chest
from bench.writers import encode
from config.settings import REPO_ROOT
from pipeline.decode import decode_image
from pipeline.preprocess import preprocess
from pipeline.repository import ModelRepository
from pipeline.runner import OnnxRunner

# (variant, width, height, reduced JPEG 2000): one line per storage form an archive hands us.
CASES = (
    ("dicom-m2-u16-explicit", 2048, 2048, False),
    ("dicom-m2-u16-explicit", 3000, 2500, False),
    ("dicom-m1-u12-explicit", 2048, 2048, False),
    ("dicom-m2-s16-explicit", 2048, 2048, False),
    ("dicom-m2-u12-rle", 2048, 2048, False),
    ("dicom-m2-u12-j2k", 2048, 2048, False),
    ("dicom-m2-u12-j2k", 2048, 2048, True),
    ("dicom-m2-s16-j2k", 2048, 2048, True),
    ("dicom-m2-u12-htj2k", 2048, 2048, False),
    ("png-8", 2048, 2048, False),
    ("png-16", 2048, 2048, False),
    ("jpeg-8", 2048, 2048, False),
)
MODELS = ("chest-xray-densenet121", "nodule-detector", "tiny")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_speed", description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    repository = ModelRepository(REPO_ROOT / "models")
    card = repository.load("chest-xray-densenet121").card
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.repeats} runs\n")
    print(f"{'variant':<32}{'size':>11}{'MB':>7}{'decode ms':>11}{'preprocess ms':>15}")
    for variant, width, height, reduced in CASES:
        data = encode(render_chest(7, 1, width, height, True)[0], variant, seed=7, index=1)
        draft = (card.input.height, card.input.width)
        decode = partial(decode_image, data, draft_size=draft, reduce_jpeg2000=reduced)
        decode_ms = _median_ms(decode, args.repeats)
        prep_ms = _median_ms(partial(preprocess, decode(), card), args.repeats)
        name = f"{variant} (reduced)" if reduced else variant
        size = f"{width}x{height}"
        print(f"{name:<32}{size:>11}{len(data) / 1e6:>7.1f}{decode_ms:>11.1f}{prep_ms:>15.1f}")
    print(f"\n{'model':<26}{'batch':>6}{'images/s':>10}  (1 process, 1 intra-op thread)")
    for name in MODELS:
        model = repository.load(name)
        runner = OnnxRunner(model, intra_op_threads=1)
        spec = model.card.input
        shape = (spec.channels, spec.height, spec.width)
        if spec.layout == "NHWC":
            shape = (spec.height, spec.width, spec.channels)
        batch = np.random.default_rng(0).random((model.card.batch_size, *shape), np.float32)
        runs = max(3, args.repeats // 3) if name.startswith("chest") else args.repeats * 4
        seconds = _median_ms(partial(runner.run, batch), runs) / 1000
        print(f"{name:<26}{model.card.batch_size:>6}{model.card.batch_size / seconds:>10.1f}")


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm caches, allocator and lazy imports
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    main()
