"""Object storage for our copies of the assets (S3-compatible: MinIO, AWS S3, ...), and the
download of the provider's asset URLs."""

from .config import FetchConfig, StorageConfig
from .fetcher import HttpAssetFetcher
from .s3 import S3ObjectStorage

__all__ = ["FetchConfig", "HttpAssetFetcher", "S3ObjectStorage", "StorageConfig"]
