"""Storage for the relay: resumable partial uploads and immutable committed blobs.

:class:`BlobStore` is the interface (see :mod:`wirelab.storage._base` for the contract
and crash guarantees); :class:`LocalBlobStore` is the default implementation, a folder on
the local file system.
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
    OffsetMismatchError,
    StorageFullError,
    UploadExistsError,
    UploadInfo,
    UploadNotFoundError,
    validate_name,
)
from ._local import LocalBlobStore

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
    "LocalBlobStore",
    "OffsetMismatchError",
    "StorageFullError",
    "UploadExistsError",
    "UploadInfo",
    "UploadNotFoundError",
    "validate_name",
]
