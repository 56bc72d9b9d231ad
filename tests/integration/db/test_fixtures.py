"""The shared fixtures in tests/conftest.py do what other tests rely on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import redis

from config.settings import Settings
from storage.blobstore import FileBlobStore, open_blob_store
from tests.blobs import put_bytes


def test_redis_url_is_claimed_for_this_session(redis_url: str) -> None:
    # The database is shared by the whole test session (it was flushed when claimed), so what
    # must hold at any point is the claim: another session on this machine cannot take it.
    client = redis.Redis.from_url(redis_url)
    try:
        if not os.environ.get("MEDFLOW_TEST_REDIS_URL"):
            assert 1 <= int(redis_url.rsplit("/", 1)[1]) <= 15
        assert client.get("medflow:test-session-claim") is not None
        assert client.ttl("medflow:test-session-claim") > 0
        other = redis.Redis.from_url(redis_url)
        assert not other.set("medflow:test-session-claim", "another", nx=True)
        other.close()
    finally:
        client.close()


def test_settings_factory_and_blob_store_agree(
    settings_factory: Callable[..., Settings], blob_store: FileBlobStore, tmp_path: Path
) -> None:
    settings = settings_factory(tmp_model_root=True, chunk_size=4)
    assert (settings.env, settings.chunk_size) == ("test", 4)
    assert settings.model_root == tmp_path / "models" and settings.model_root.is_dir()
    key = put_bytes(blob_store, b"x").key
    assert open_blob_store(settings).get(key) == b"x"
    assert settings_factory().model_root != settings.model_root  # the bundled models by default
