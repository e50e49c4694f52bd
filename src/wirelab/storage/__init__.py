"""Storage for the relay: resumable partial uploads and immutable committed blobs.

:class:`BlobStore` is the interface (see :mod:`wirelab.storage._base` for the contract
and crash guarantees); :class:`LocalBlobStore` is the default implementation, a folder on
the local file system; :class:`S3BlobStore` keeps them in an S3-compatible bucket
(``wirelab[s3]``). :func:`open_blob_store` picks one from ``WIRELAB_STORAGE_URL``.
"""

from ._base import (
    MAX_READ_CHUNK,
    NAME_PATTERN,
    BlobExistsError,
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    BlobStore,
    ChecksumMismatchError,
    DigestMismatchError,
    InvalidNameError,
    InvalidRangeError,
    LiveReadUnsupportedError,
    OffsetMismatchError,
    StorageAccessError,
    StorageFullError,
    UploadExistsError,
    UploadInfo,
    UploadNotFoundError,
    validate_name,
)
from ._local import LocalBlobStore
from ._open import check_storage_url, open_blob_store
from ._s3 import S3BlobStore  # boto3 (wirelab[s3]) is imported only when one is made

__all__ = [
    "MAX_READ_CHUNK",
    "NAME_PATTERN",
    "BlobExistsError",
    "BlobInfo",
    "BlobNotFoundError",
    "BlobReader",
    "BlobStore",
    "ChecksumMismatchError",
    "DigestMismatchError",
    "InvalidNameError",
    "InvalidRangeError",
    "LiveReadUnsupportedError",
    "LocalBlobStore",
    "OffsetMismatchError",
    "S3BlobStore",
    "StorageAccessError",
    "StorageFullError",
    "UploadExistsError",
    "UploadInfo",
    "UploadNotFoundError",
    "check_storage_url",
    "open_blob_store",
    "validate_name",
]
