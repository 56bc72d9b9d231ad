"""The model repository behind a URL: a directory, or ``s3://bucket/prefix`` mirrored locally.

Both keep the layout ``<name>/<version>/model.onnx`` + ``model.json`` (+ ``<name>/ACTIVE``) that
``pipeline.repository.ModelRepository`` reads, which always reads a local directory
(``local_root``): the directory itself, or for S3 a cache on this host. A host that shares no
disk with the hub (a worker on another machine) gets its models this way: ``refresh`` copies
the cards (small) when a name or version is not known yet, ``ensure`` copies one version's graph
on first use. The graph is checked against its card's sha256 on load, and workers check that
against the registry's (the sha256 a task carries), so a changed object is refused, not served.

A version is immutable once published: the graph is uploaded first and the card last, so a
reader that sees the card finds the graph.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from config.settings import Settings

CARD_FILE = "model.json"
GRAPH_FILE = "model.onnx"
ACTIVE_FILE = "ACTIVE"
# Names and versions become directory names: nothing that could climb out of the root.
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STAGING_PREFIX = ".medflow-staging-"


class ModelVersionExists(FileExistsError):
    """This name:version is already in the repository (versions are immutable)."""


class ModelStore(Protocol):
    local_root: Path

    def refresh(self) -> None: ...

    def ensure(self, name: str, version: str) -> None: ...

    def forget(self, name: str, version: str) -> None: ...

    def staging_dir(self) -> Path: ...

    def publish(self, version_dir: Path, name: str, version: str) -> None: ...


def is_segment(value: str) -> bool:
    return bool(SEGMENT.fullmatch(value)) and value not in (".", "..")


class DirectoryModelStore:
    """The repository is a directory every process can read (one machine, or a shared volume)."""

    def __init__(self, root: Path) -> None:
        self.local_root = Path(root)

    def refresh(self) -> None:
        return None  # the directory is the repository

    def ensure(self, name: str, version: str) -> None:
        return None

    def forget(self, name: str, version: str) -> None:
        return None  # nothing cached: the directory is the only copy

    def staging_dir(self) -> Path:
        # Inside the root, so publishing is one rename on one filesystem (atomic). The
        # repository never lists it: a model is <root>/<name>/<version>/model.json.
        self.local_root.mkdir(parents=True, exist_ok=True)
        return self.local_root

    def publish(self, version_dir: Path, name: str, version: str) -> None:
        (self.local_root / name).mkdir(parents=True, exist_ok=True)
        try:
            os.rename(version_dir, self.local_root / name / version)
        except OSError as exc:  # EEXIST / ENOTEMPTY: another upload of this version won
            if (self.local_root / name / version).exists():
                raise ModelVersionExists(f"{name}:{version}") from exc
            raise


class S3ModelStore:
    """Objects ``<prefix>/<name>/<version>/{model.onnx,model.json}``, cached in ``cache_dir``."""

    def __init__(self, bucket: str, prefix: str, cache_dir: Path, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.local_root = Path(cache_dir)
        self.client = client

    def object_name(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def refresh(self) -> None:
        """Copy every card and ACTIVE marker (a few KB each); graphs wait for ``ensure``."""
        for name, version in self._listed():
            target = self.local_root / name / version / CARD_FILE
            if not target.exists():  # versions are immutable: a cached card stays right
                self._download(self.object_name(name, version, CARD_FILE), target)
        for name in {name for name, _ in self._listed()}:
            self._refresh_active(name)

    def ensure(self, name: str, version: str) -> None:
        if not (is_segment(name) and is_segment(version)):
            raise ValueError("model name and version must be plain path segments")
        version_dir = self.local_root / name / version
        for file in (CARD_FILE, GRAPH_FILE):
            if not (version_dir / file).exists():
                self._download(self.object_name(name, version, file), version_dir / file)

    def forget(self, name: str, version: str) -> None:
        shutil.rmtree(self.local_root / name / version, ignore_errors=True)

    def staging_dir(self) -> Path:
        self.local_root.mkdir(parents=True, exist_ok=True)
        return self.local_root

    def publish(self, version_dir: Path, name: str, version: str) -> None:
        card = self.object_name(name, version, CARD_FILE)
        if self._exists(card):
            raise ModelVersionExists(f"{name}:{version}")
        self.client.upload_file(
            str(version_dir / GRAPH_FILE), self.bucket, self.object_name(name, version, GRAPH_FILE)
        )
        self.client.upload_file(str(version_dir / CARD_FILE), self.bucket, card)

    def _listed(self) -> list[tuple[str, str]]:
        found = []
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", []):
                parts = item["Key"][len(start) :].split("/")
                if len(parts) == 3 and parts[2] == CARD_FILE and all(map(is_segment, parts[:2])):
                    found.append((parts[0], parts[1]))
        return found

    def _refresh_active(self, name: str) -> None:
        marker = self.local_root / name / ACTIVE_FILE
        try:
            self._download(self.object_name(name, ACTIVE_FILE), marker)
        except self.client.exceptions.ClientError:
            marker.unlink(missing_ok=True)  # no marker: the highest version is the active one

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError:
            return False
        return True

    def _download(self, key: str, target: Path) -> None:
        # Into a temp file beside the target, then a rename: another process of this host
        # reading the cache sees the whole file or none of it.
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".part-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                self.client.download_fileobj(self.bucket, key, out)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def open_model_store(settings: Settings) -> ModelStore:
    """The repository named by ``settings.model_repository`` (default: ``model_root``)."""
    url = settings.model_repository
    if not url:
        return DirectoryModelStore(settings.model_root)
    parts = urlsplit(url)
    if parts.scheme == "s3" and parts.netloc:
        from storage.s3 import s3_client

        client = s3_client(settings.s3_endpoint_url)
        return S3ModelStore(parts.netloc, unquote(parts.path), settings.model_cache_dir, client)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return DirectoryModelStore(Path(unquote(parts.path)))
    if not parts.scheme:
        return DirectoryModelStore(Path(url))
    raise ValueError(
        "MEDFLOW_MODEL_REPOSITORY must be a directory, file:///dir or s3://bucket/prefix"
    )


def staged_version(store: ModelStore, name: str, version: str) -> tuple[Path, Path]:
    """A fresh staging directory and the ``<name>/<version>`` directory inside it."""
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=store.staging_dir()))
    version_dir = staging / name / version
    version_dir.mkdir(parents=True)
    return staging, version_dir
