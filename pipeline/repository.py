"""The model repository reader: ``<root>/<name>/<version>/model.onnx`` + ``model.json``.

Loading a model checks everything that can be checked before the first image: the card parses,
``model.onnx`` has the card's sha256, and the graph's input and output agree with the card.
A mismatch is a :class:`~pipeline.errors.ModelError` whose ``field`` names the card entry that
is wrong, so a worker refuses to start instead of producing wrong scores.

Names and versions are never used to build paths directly: a reference from a user is matched
against the directories that exist.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.card import ModelCard
from pipeline.errors import ModelError
from pipeline.graph_check import check_graph

CARD_FILE = "model.json"
GRAPH_FILE = "model.onnx"
ACTIVE_FILE = "ACTIVE"  # optional: names the version that "name" without ":version" means


@dataclass(frozen=True)
class LoadedModel:
    """A checked model: its card, the graph file and that file's sha256 (hex)."""

    card: ModelCard
    path: Path
    sha256: str


class ModelRepository:
    """Reads one repository root; holds no state besides the root, so it is cheap to create."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Model names that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and _versions_in(d))

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, oldest first, numeric-aware ("2" < "10", "1.2" < "1.10")."""
        return _versions_in(self._model_dir(name))

    def cards(self) -> list[ModelCard]:
        """The card of every version of every model (read and validated, graphs not checked)."""
        return [
            self._card(name, version) for name in self.names() for version in self.versions(name)
        ]

    def resolve(self, ref: str) -> tuple[str, str]:
        """``"name"`` or ``"name:version"`` -> ``(name, version)``; no version: the active one.

        The active version is the one ``<name>/ACTIVE`` names, else the highest version.
        """
        name, _, version = ref.strip().partition(":")
        versions = self.versions(name)
        if version:
            if version not in versions:
                raise ModelError(
                    f"{name} has no version {version!r}; versions: {', '.join(versions)}",
                    field="model",
                )
            return name, version
        return name, self._active(name, versions)

    def load(self, ref: str) -> LoadedModel:
        """Resolve ``ref``, then check the card, the file's sha256 and the graph."""
        name, version = self.resolve(ref)
        card = self._card(name, version)
        path = self.root / name / version / GRAPH_FILE
        if not path.is_file():
            raise ModelError(f"{card.ref} has no {GRAPH_FILE}", field="model")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != card.sha256.lower():
            raise ModelError(
                f"{GRAPH_FILE} of {card.ref} has sha256 {digest}, the card says {card.sha256}",
                field="sha256",
            )
        check_graph(data, card)
        return LoadedModel(card=card, path=path, sha256=digest)

    def _model_dir(self, name: str) -> Path:
        if name not in self.names():
            available = ", ".join(self.names()) or "none"
            raise ModelError(f"unknown model {name!r}; available: {available}", field="model")
        return self.root / name

    def _active(self, name: str, versions: list[str]) -> str:
        marker = self.root / name / ACTIVE_FILE
        if not marker.is_file():
            return versions[-1]
        active = marker.read_text(encoding="utf-8").strip()
        if active not in versions:
            raise ModelError(
                f"{name}/{ACTIVE_FILE} names version {active!r}, which does not exist; "
                f"versions: {', '.join(versions)}",
                field="model",
            )
        return active

    def _card(self, name: str, version: str) -> ModelCard:
        path = self.root / name / version / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{name}:{version}: cannot read {CARD_FILE}", field=CARD_FILE) from exc
        if not isinstance(data, dict):
            raise ModelError(f"{name}:{version}: {CARD_FILE} is not an object", field=CARD_FILE)
        card = ModelCard.from_dict(data)
        if card.name != name:
            raise ModelError(f"card says {card.name!r}, directory is {name!r}", field="name")
        if card.version != version:
            raise ModelError(
                f"card says {card.version!r}, directory is {version!r}", field="version"
            )
        return card


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Numeric-aware sort key: digit runs compare as numbers, before any text."""
    parts = re.findall(r"\d+|\D+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _versions_in(model_dir: Path) -> list[str]:
    if not model_dir.is_dir():
        return []
    found = [d.name for d in model_dir.iterdir() if (d / CARD_FILE).is_file()]
    return sorted(found, key=version_key)
