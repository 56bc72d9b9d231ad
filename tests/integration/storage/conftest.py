"""Fixtures for the storage tests: a client and a fresh bucket on the moto S3 server."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from storage.s3 import s3_client


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return s3_client(s3_endpoint)


@pytest.fixture
def s3_bucket(s3: Any) -> str:
    name = f"medflow-test-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    return name
