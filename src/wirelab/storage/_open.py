"""Choosing a :class:`BlobStore` from ``WIRELAB_STORAGE_URL`` (a folder or ``s3://``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._exceptions import UsageError
from ._base import BlobStore
from ._local import LocalBlobStore

__all__ = ["check_storage_url", "open_blob_store"]


def check_storage_url(url: str) -> str:
    """Return *url* if :func:`open_blob_store` accepts it, else raise :class:`UsageError`."""
    if url.startswith("s3://"):
        from ._s3client import parse_s3_url

        parse_s3_url(url)
    elif "://" in url and not url.startswith("file://"):
        raise UsageError(
            f"unsupported storage URL {url!r}: give a folder, file:///folder or s3://bucket/prefix"
        )
    return url


def open_blob_store(url: str | None, area: str, data_dir: Path, **local_options: Any) -> BlobStore:
    """The store for *area* (``"relay"``, ``"media"``) of the storage at *url*.

    ``None`` or an empty URL: the folder ``data_dir/area`` (the embedded default). A path
    or ``file://`` URL: the folder ``<path>/area``. ``s3://bucket/prefix``: the prefix
    ``prefix/area/`` of *bucket*, endpoint, region and credentials from boto's standard
    configuration (``AWS_*`` variables, profiles). *local_options* go to
    :class:`LocalBlobStore` only (the S3 store has no disk to manage).
    """
    if not url:
        return LocalBlobStore(data_dir / area, **local_options)
    check_storage_url(url)
    if url.startswith("s3://"):
        from ._s3 import S3BlobStore
        from ._s3client import parse_s3_url

        location = parse_s3_url(url)
        return S3BlobStore(location.bucket, f"{location.prefix}{area}/")
    if url.startswith("file://"):
        return LocalBlobStore(Path(url[len("file://") :]) / area, **local_options)
    return LocalBlobStore(Path(url) / area, **local_options)
