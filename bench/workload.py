"""A synthetic data set: N chest X-rays in mixed formats, with ground truth.

Each item depends only on ``(seed, index, mix, max_side)``, never on the count, so the first ten
images of a 500-image workload are the ten images of a 10-image one. Proportions are exact per
block: in the default mix every 4 consecutive indices hold 2 DICOM, 1 PNG and 1 JPEG, every 5
hold 2 images with nodules (40 %), and DICOM and PNG items cycle through all their variants.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench.synthetic import Nodule, render_chest
from bench.writers import DICOM_VARIANTS, file_suffix, variant_format, write
from pipeline.image import ImageFormat

GROUND_TRUTH = "ground_truth.csv"
MIXES = ("default", "dicom", "png", "jpeg")
CSV_FIELDS = (
    "file", "format", "variant", "width", "height", "has_nodule", "nodule_count", "nodules",
)  # fmt: skip

# (width, height) and relative weight. DICOM holds full-size films; PNG/JPEG are often exports.
DICOM_SIZES = (((512, 512), 1), ((1024, 1024), 2), ((2048, 2048), 3), ((2048, 2500), 2),
               ((3000, 2500), 1))  # fmt: skip
EXPORT_SIZES = (((512, 512), 1), ((1024, 1024), 2), ((1024, 1248), 2), ((2048, 2048), 1),
                ((2000, 2500), 1))  # fmt: skip
PNG_VARIANTS = ("png-8", "png-16")
MIN_SIDE = 64

# Random streams of the plan, keyed [seed, _PLAN, what, block]: four words, so they never
# coincide with the image's own three-word streams [seed, index, stream].
_PLAN, _FORMAT, _DICOM, _PNG, _NODULE, _SIZE = 0xB1, 0, 1, 2, 3, 4


@dataclass(frozen=True)
class ItemPlan:
    index: int
    variant: str
    width: int
    height: int
    has_nodule: bool


@dataclass(frozen=True)
class WorkloadItem:
    """One generated file and its ground truth (nodule centres and radii in pixels)."""

    path: Path
    format: ImageFormat
    variant: str
    width: int
    height: int
    has_nodule: bool
    nodules: tuple[Nodule, ...]
    index: int = 0


def plan_item(seed: int, index: int, mix: str = "default", max_side: int = 3000) -> ItemPlan:
    """Decide the variant, size and nodule status of image ``index``."""
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; expected one of {', '.join(MIXES)}")
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side must be at least {MIN_SIDE}")
    fmt, ordinal = _format_of(seed, index, mix)
    if fmt == "dicom":
        names = tuple(DICOM_VARIANTS)
        variant = names[_slot(seed, _DICOM, ordinal, len(names))]
    elif fmt == "png":
        variant = PNG_VARIANTS[_slot(seed, _PNG, ordinal, len(PNG_VARIANTS))]
    else:
        variant = "jpeg-8"
    width, height = _size(seed, index, DICOM_SIZES if fmt == "dicom" else EXPORT_SIZES, max_side)
    return ItemPlan(index, variant, width, height, _slot(seed, _NODULE, index, 5) < 2)


def generate_item(
    out_dir: Path, seed: int, index: int, mix: str = "default", max_side: int = 3000
) -> WorkloadItem:
    """Render and write image ``index``; the file is ``<index:05d>.<dcm|png|jpg>``."""
    plan = plan_item(seed, index, mix, max_side)
    image, nodules = render_chest(seed, index, plan.width, plan.height, plan.has_nodule)
    path = out_dir / f"{index:05d}{file_suffix(plan.variant)}"
    write(path, image, plan.variant, seed=seed, index=index)
    return WorkloadItem(
        path=path,
        format=variant_format(plan.variant),
        variant=plan.variant,
        width=plan.width,
        height=plan.height,
        has_nodule=bool(nodules),
        nodules=tuple(nodules),
        index=index,
    )


def generate_workload(
    out_dir: Path,
    count: int,
    seed: int,
    mix: str = "default",
    max_side: int = 3000,
    *,
    jobs: int = 1,
) -> list[WorkloadItem]:
    """Write ``count`` images and ``ground_truth.csv`` into ``out_dir``; ``jobs`` processes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_item(seed, 0, mix, max_side)  # validate the arguments before any work
    make = partial(generate_item, out_dir, seed, mix=mix, max_side=max_side)
    if jobs <= 1 or count <= 1:
        items = [make(index) for index in range(count)]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            items = list(pool.map(make, range(count), chunksize=4))
    write_ground_truth(out_dir / GROUND_TRUTH, items)
    return items


def write_ground_truth(path: Path, items: Iterable[WorkloadItem]) -> None:
    """One row per file; ``nodules`` is a JSON list of ``{"x", "y", "r", "contrast"}``."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_FIELDS)
        for item in items:
            nodules = [
                {
                    "x": round(n.x, 2),
                    "y": round(n.y, 2),
                    "r": round(n.radius, 2),
                    "contrast": round(n.contrast, 4),
                }
                for n in item.nodules
            ]
            writer.writerow([
                item.path.name, item.format.value, item.variant, item.width, item.height,
                int(item.has_nodule), len(item.nodules), json.dumps(nodules),
            ])  # fmt: skip


def read_ground_truth(path: Path) -> list[WorkloadItem]:
    """Read ``ground_truth.csv``; item paths are resolved against its directory."""
    items = []
    with path.open(newline="") as source:
        for row in csv.DictReader(source):
            nodules = tuple(
                Nodule(n["x"], n["y"], n["r"], n["contrast"]) for n in json.loads(row["nodules"])
            )
            items.append(
                WorkloadItem(
                    path=path.parent / row["file"],
                    format=ImageFormat(row["format"]),
                    variant=row["variant"],
                    width=int(row["width"]),
                    height=int(row["height"]),
                    has_nodule=row["has_nodule"] == "1",
                    nodules=nodules,
                    index=int(Path(row["file"]).stem),
                )
            )
    return items


def _format_of(seed: int, index: int, mix: str) -> tuple[str, int]:
    """The format of image ``index`` and its ordinal among the images of that format."""
    if mix != "default":
        return mix, index
    block = index // 4
    position = _slot(seed, _FORMAT, index, 4)
    if position < 2:
        return "dicom", 2 * block + position
    return ("png" if position == 2 else "jpeg"), block


def _slot(seed: int, what: int, ordinal: int, period: int) -> int:
    """Position of ``ordinal`` in a seeded shuffle of each block of ``period`` ordinals."""
    block, offset = divmod(ordinal, period)
    order = np.random.default_rng([seed, _PLAN, what, block]).permutation(period)
    return int(order[offset])


def _size(
    seed: int, index: int, sizes: tuple[tuple[tuple[int, int], int], ...], max_side: int
) -> tuple[int, int]:
    weights = np.array([weight for _, weight in sizes], dtype=np.float64)
    rng = np.random.default_rng([seed, _PLAN, _SIZE, index])
    width, height = sizes[int(rng.choice(len(sizes), p=weights / weights.sum()))][0]
    scale = min(1.0, max_side / max(width, height))
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))
