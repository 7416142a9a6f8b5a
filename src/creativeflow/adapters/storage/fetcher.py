"""Downloading a provider's asset URL with httpx: streamed, hashed and size-capped.

The URL came from n8n (it passed the callback's checks); here it is fetched, so every hop is
checked again: the host must be one of ``ASSET_URL_HOSTS`` at each redirect, the answer must be
a 200 whose declared type is an image (or unnamed) and whose first bytes prove an image type we
keep, and no more than ``max_bytes`` are read. A 4xx other than 408 and 429 means the URL is
gone or refused: not retried. Timeouts, 5xx and transport faults are retried by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from urllib.parse import urlsplit

import httpx

from creativeflow.domain.assets import SIGNATURE_BYTES, sniff_image_type
from creativeflow.domain.errors import AssetSourceRefused, AssetSourceUnavailable
from creativeflow.services.ports import FetchedAsset

from .config import FetchConfig

log = logging.getLogger(__name__)

DECLARED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
RETRIED_STATUSES = frozenset({408, 425, 429})


def _host_refusal(url: httpx.URL, allowed: frozenset[str]) -> str | None:
    if url.scheme not in ("http", "https") or not url.host:
        return "the asset URL is not an http(s) URL"
    if allowed and url.host.lower() not in allowed:
        return "the asset URL (or a redirect) leaves the allowed storage hosts"
    return None


def _where(url: str) -> str:
    """Scheme, host and path of a URL, for logs: its query may carry the provider's signature."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"


class HttpAssetFetcher:
    def __init__(self, config: FetchConfig, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout),
            follow_redirects=True,
            max_redirects=config.max_redirects,
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
            event_hooks={"request": [self._check_host]},
        )

    async def _check_host(self, request: httpx.Request) -> None:
        refusal = _host_refusal(request.url, self._config.allowed_hosts)
        if refusal:
            raise AssetSourceRefused(refusal)

    async def fetch(self, url: str) -> FetchedAsset:
        try:
            async with self._client.stream("GET", url) as response:
                self._check_answer(response, url)
                return await self._spool(response, url)
        except httpx.TooManyRedirects:
            raise AssetSourceRefused("the asset URL redirects too many times") from None
        except httpx.HTTPError as error:
            raise AssetSourceUnavailable(
                f"the asset URL {_where(url)} did not answer: {type(error).__name__}"
            ) from None

    def _check_answer(self, response: httpx.Response, url: str) -> None:
        status = response.status_code
        if status >= 500 or status in RETRIED_STATUSES:
            raise AssetSourceUnavailable(f"the asset URL {_where(url)} answered HTTP {status}")
        if status != 200:
            raise AssetSourceRefused(f"the asset URL {_where(url)} answered HTTP {status}")
        declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if declared not in DECLARED_TYPES and not declared.startswith("image/"):
            raise AssetSourceRefused(f"the asset URL {_where(url)} is not an image ({declared})")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._config.max_bytes:
            raise AssetSourceRefused(
                f"the asset at {_where(url)} is larger than {self._config.max_bytes} bytes"
            )

    async def _spool(self, response: httpx.Response, url: str) -> FetchedAsset:
        spool = tempfile.SpooledTemporaryFile(max_size=self._config.spool_bytes)  # noqa: SIM115
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._config.max_bytes:
                    raise AssetSourceRefused(
                        f"the asset at {_where(url)} is larger than {self._config.max_bytes} bytes"
                    )
                if len(head) < SIGNATURE_BYTES:
                    head += chunk[: SIGNATURE_BYTES - len(head)]
                digest.update(chunk)
                spool.write(chunk)
            content_type = sniff_image_type(head)
            if content_type is None:
                raise AssetSourceRefused(
                    f"the asset at {_where(url)} is not a PNG, JPEG, WebP or TIFF image"
                )
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return FetchedAsset(
            file=spool,
            byte_size=size,
            checksum_sha256=digest.hexdigest(),
            content_type=content_type,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
