"""The part of kustomize these manifests use, in Python, for machines without kubectl.

Supports ``resources`` (files and directories holding a kustomization), ``namespace``,
``images`` (``newName`` / ``newTag``), ``replicas`` and ``labels`` (``pairs``, on the
resources' metadata only, as kustomize does without ``includeSelectors``). Anything else in a
kustomization is refused, so a new feature used in deploy/ fails here instead of rendering
wrongly. Where kubectl exists, the tests check that both render the same resources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "labels"}


def render(directory: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: kustomize features not supported here: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for doc in docs:
        _apply(doc, spec)
    return docs


def _apply(doc: dict[str, Any], spec: dict[str, Any]) -> None:
    if "namespace" in spec:
        doc["metadata"]["namespace"] = spec["namespace"]
    for group in spec.get("labels", []):
        doc["metadata"].setdefault("labels", {}).update(group["pairs"])
    for replica in spec.get("replicas", []):
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == replica["name"]:
            doc["spec"]["replicas"] = replica["count"]
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        container["image"] = _image(container["image"], spec.get("images", []))


def _image(image: str, rules: list[dict[str, Any]]) -> str:
    name, _, tag = image.partition(":")
    for rule in rules:
        if rule["name"] == name:
            return f"{rule.get('newName', name)}:{rule.get('newTag', tag)}".rstrip(":")
    return image
