"""The local stack's S3-compatible server, and a stand-in for an AI provider's asset URLs.

No MinIO server installs from the package registries this project uses, so the local stack and
the tests run moto's S3 server (``ThreadedMotoServer``: a real HTTP server speaking the S3 API)
on the port of ``S3_ENDPOINT_URL``; compose runs a real MinIO (docs/decisions.md). moto does not
check signatures, expiry or checksums: what those do is MinIO's and S3's, and the tests assert
what the service sends.

:class:`ProviderAssets` is what the n8n simulator hands out as its provider's output: a small
real PNG for each asset, put in a bucket of its own on that server, behind a signed URL that
expires within the hour as a provider's does. :meth:`ProviderAssets.forget` removes one, as a
provider's expiry would: its URL then answers 404.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

log = logging.getLogger(__name__)

PROVIDER_BUCKET = "provider-assets"
PROVIDER_URL_TTL_SECONDS = 3600


@dataclass(frozen=True, slots=True, repr=False)
class S3Endpoint:
    url: str
    access_key_id: str = "creativeflow"
    secret_access_key: str = field(default="dev-storage-secret", repr=False)
    region: str = "us-east-1"

    def __repr__(self) -> str:
        return f"S3Endpoint(url={self.url!r}, region={self.region!r})"

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 2, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def ensure_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    client = endpoint.client()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        extra: dict[str, Any] = {}
        if endpoint.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": endpoint.region}
        client.create_bucket(Bucket=bucket, **extra)


@contextmanager
def s3_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """moto's S3 server on ``host:port`` (0: a free port) for the ``with`` block; yields its
    endpoint URL. Its objects live in memory: they are gone when it stops."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO: the stack's log stays about the product
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        bound_host, bound_port = server.get_host_and_port()
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.stop()


def png(width: int, height: int, seed: int) -> bytes:
    """A real PNG of ``width`` x ``height`` (at most 64 each, to stay small) in one colour
    drawn from ``seed``."""
    width, height = max(1, min(width, 64)), max(1, min(height, 64))
    colour = bytes([(seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256])
    rows = b"".join(b"\x00" + colour * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class ProviderAssets:
    """An AI provider's output store: :meth:`publish` renders and uploads an image and answers
    its signed URL. Thread-safe (the simulator answers on several threads)."""

    def __init__(self, endpoint: S3Endpoint, bucket: str = PROVIDER_BUCKET) -> None:
        self._endpoint = endpoint
        self._bucket = bucket
        self._client = endpoint.client()
        self._lock = threading.Lock()
        self._published = 0
        ensure_bucket(endpoint, bucket)

    def publish(self, key: str, width: int, height: int) -> str:
        with self._lock:
            self._published += 1
            seed = self._published
        body = png(width // 16, height // 16, seed)
        self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="image/png")
        return str(
            self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": key},
                ExpiresIn=PROVIDER_URL_TTL_SECONDS,
            )
        )

    def forget(self, url: str) -> None:
        """The provider's copy is gone (its URL expired): the URL answers 404 from now on."""
        path = urlsplit(url).path.lstrip("/")
        bucket, _, key = path.partition("/")
        self._client.delete_object(Bucket=bucket, Key=key)
