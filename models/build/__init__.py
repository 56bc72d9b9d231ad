"""Build the bundled demo models into the model repository, deterministically.

``build_models(root)`` writes ``<root>/<name>/<version>/model.onnx`` and ``model.json`` for each
model in :data:`BUILDERS`; the same code gives the same bytes (and sha256) on every machine.
Run it as ``python -m models.build [--root DIR] [--only NAME ...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from models.build import densenet121, nodule_detector, tiny
from models.build.graph import BuiltModel, WrittenModel, write_model

DEFAULT_ROOT = Path(__file__).resolve().parents[1]  # the models/ folder itself

BUILDERS: dict[str, Callable[[], BuiltModel]] = {
    densenet121.NAME: densenet121.build,
    nodule_detector.NAME: nodule_detector.build,
    tiny.NAME: tiny.build,
}


def build_models(root: Path = DEFAULT_ROOT, only: Iterable[str] = ()) -> list[WrittenModel]:
    """Build and write the named models (all when ``only`` is empty), in a fixed order."""
    names = list(only) or list(BUILDERS)
    unknown = sorted(set(names) - set(BUILDERS))
    if unknown:
        raise KeyError(f"unknown model(s) {unknown}; known: {sorted(BUILDERS)}")
    return [write_model(Path(root), BUILDERS[name]()) for name in names]


__all__ = ["BUILDERS", "DEFAULT_ROOT", "WrittenModel", "build_models"]
