"""Write a synthetic chest X-ray workload with its ground truth.

Usage::

    python -m bench.generate OUT_DIR --count N --seed S [--mix default|dicom|png|jpeg]
        [--max-side 3000] [--jobs 1]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.workload import GROUND_TRUTH, MIXES, WorkloadItem, generate_workload


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    items = generate_workload(
        args.out_dir, args.count, args.seed, args.mix, args.max_side, jobs=args.jobs
    )
    print(summarize(items, time.perf_counter() - start, args.out_dir / GROUND_TRUTH))
    return 0


def summarize(items: Sequence[WorkloadItem], seconds: float, ground_truth: Path) -> str:
    """A few lines: counts by format and variant, nodules, sizes, bytes and time."""
    count = len(items)
    positives = sum(item.has_nodule for item in items)
    nodules = sum(len(item.nodules) for item in items)
    size_bytes = sum(item.path.stat().st_size for item in items)
    formats = Counter(item.format.value for item in items)
    variants = Counter(item.variant for item in items)
    sizes = Counter(f"{item.width}x{item.height}" for item in items)
    per_image = 1000 * seconds / count if count else 0.0
    return "\n".join(
        [
            f"wrote {count} images ({size_bytes / 1e6:.1f} MB) and {ground_truth}",
            f"  time: {seconds:.1f} s ({per_image:.0f} ms per image)",
            f"  with nodules: {positives} ({nodules} nodules), without: {count - positives}",
            f"  formats: {_counts(formats)}",
            f"  variants: {_counts(variants)}",
            f"  sizes: {_counts(sizes)}",
        ]
    )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", type=Path, help="directory for the files and ground truth")
    parser.add_argument("--count", type=int, default=100, help="number of images (100)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed, >= 0 (0)")
    parser.add_argument("--mix", choices=MIXES, default="default", help="formats (default)")
    parser.add_argument("--max-side", type=int, default=3000, help="longest side, px (3000)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (1)")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
