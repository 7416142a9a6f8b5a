"""The bucket, through boto3: path-style addressing, bounded retries, timeouts on every call.

boto3's client is thread-safe and blocking: its calls run on a small thread pool of their own,
bridged to asyncio, so a slow storage server never holds the event loop. Signing a link is a
local computation (no call), done on a client configured with the public endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from creativeflow.domain.errors import StorageUnavailable
from creativeflow.services.ports import FetchedAsset

from .config import StorageConfig

log = logging.getLogger(__name__)

# seconds the readiness check may take (one try)
CHECK_TIMEOUT = 2.0


def _client(
    config: StorageConfig,
    endpoint_url: str,
    *,
    attempts: int | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout or config.connect_timeout,
            read_timeout=read_timeout or config.read_timeout,
            retries={"max_attempts": attempts or config.max_attempts, "mode": "standard"},
            # checksums only where a call needs one: older S3-compatible servers refuse the
            # newer default trailers; every upload sends its SHA-256 explicitly instead
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=max(config.workers, 1),
        ),
    )


def _reason(error: Exception) -> str:
    """What went wrong, without the request's signature or credentials."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "error")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"storage answered {code} (HTTP {status})"
    return f"storage unreachable: {type(error).__name__}"


class S3ObjectStorage:
    def __init__(self, config: StorageConfig) -> None:
        self._config = config
        self._client = _client(config, config.endpoint_url)
        self._signer = (
            _client(config, config.public_endpoint_url)
            if config.public_endpoint_url
            else self._client
        )
        # readiness asks once, quickly: a probe must answer sooner than a copy may take
        self._checker = _client(
            config,
            config.endpoint_url,
            attempts=1,
            connect_timeout=min(config.connect_timeout, CHECK_TIMEOUT),
            read_timeout=CHECK_TIMEOUT,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=max(config.workers, 1), thread_name_prefix="creativeflow-storage"
        )

    @property
    def bucket(self) -> str:
        return self._config.bucket

    async def _call(self, method: str, *, client: Any = None, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        chosen = client or self._client

        def call() -> Any:
            return getattr(chosen, method)(**kwargs)

        try:
            return await loop.run_in_executor(self._pool, call)
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(_reason(error)) from None

    async def put(self, key: str, asset: FetchedAsset) -> None:
        asset.file.seek(0)
        digest = bytes.fromhex(asset.checksum_sha256)
        await self._call(
            "put_object",
            Bucket=self._config.bucket,
            Key=key,
            Body=asset.file,
            ContentLength=asset.byte_size,
            ContentType=asset.content_type,
            # the server checks the bytes it received against it
            ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
            Metadata={"sha256": asset.checksum_sha256},
        )

    def presign_get(self, key: str, ttl: timedelta) -> str:
        return str(
            self._signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._config.bucket, "Key": key},
                ExpiresIn=max(int(ttl.total_seconds()), 1),
            )
        )

    async def check(self) -> bool:
        try:
            await self._call("head_bucket", client=self._checker, Bucket=self._config.bucket)
        except StorageUnavailable as failure:
            log.warning("object storage not ready: %s", failure.detail)
            return False
        return True

    async def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (the local stack and tests; in production the
        bucket and its policies are the operators')."""
        if await self.check():
            return
        extra: dict[str, Any] = {}
        if self._config.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._config.region}
        await self._call("create_bucket", Bucket=self._config.bucket, **extra)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=True)
        clients = (self._client, self._signer, self._checker)
        for client in {id(c): c for c in clients}.values():
            client.close()
