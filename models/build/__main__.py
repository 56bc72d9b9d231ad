"""``python -m models.build [--root DIR] [--only NAME ...]``: build the bundled models."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from models.build import BUILDERS, DEFAULT_ROOT, build_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.build", description=__doc__)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="model repository root")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        choices=sorted(BUILDERS),
        metavar="NAME",
        help=f"build only these models ({', '.join(sorted(BUILDERS))})",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for written in build_models(args.root, args.only):
        card = written.card
        print(f"{card.name}\t{card.version}\t{card.sha256}\t{written.size}\t{written.path}")
    print(f"built in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
