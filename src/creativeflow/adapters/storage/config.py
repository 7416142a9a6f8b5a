"""Settings of the object storage adapter and of the asset download."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, repr=False)
class StorageConfig:
    """Where the bucket is and how patiently to call it.

    ``endpoint_url`` is what this service calls; ``public_endpoint_url`` (when set) is the host
    signed links name, for a storage server users reach by another address than the service
    does (``http://minio:9000`` inside compose, ``https://assets.example.com`` outside).
    Addressing is path-style (``<endpoint>/<bucket>/<key>``), which every S3-compatible server
    serves. ``max_attempts`` counts every try of one call, the first included.
    """

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    public_endpoint_url: str | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    workers: int = 4

    def __repr__(self) -> str:  # the secret never shows
        return (
            f"StorageConfig(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, "
            f"region={self.region!r})"
        )


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How a provider's asset URL is downloaded: the hosts it may be on (at every redirect;
    empty: any http(s) host), the largest size kept, and the timeout of each phase."""

    allowed_hosts: frozenset[str] = frozenset()
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 10.0
    max_redirects: int = 3
    # bytes kept in memory before the download spills to a temporary file
    spool_bytes: int = 1024 * 1024
