"""The one place an S3 client is built (blob store, URI imports, audit anchors).

boto3 is imported on first use: only the S3 paths pay for it.
"""

from __future__ import annotations

from typing import Any


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client; credentials and region come from the usual AWS configuration, and
    ``endpoint_url`` names a MinIO or moto server (None: AWS)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)
