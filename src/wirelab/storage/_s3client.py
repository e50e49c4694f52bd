"""The S3 side of :mod:`wirelab.storage._s3`: the URL, the boto3 client, error translation
and the streaming reader.

boto3 is synchronous; every call runs in a worker thread (:func:`run_io`), which keeps
the event loop free while a request waits for the network. A boto3 client is thread-safe.
Endpoint, region and credentials come from boto's own configuration chain
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, the shared config
files, instance roles): wirelab adds no settings of its own for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .._exceptions import IntegrityError, UsageError
from ._base import MAX_READ_CHUNK, BlobReader, StorageAccessError
from ._fsutil import run_io

__all__ = ["S3Location", "S3Reader", "call", "is_missing", "make_client", "parse_s3_url"]

T = TypeVar("T")

# Error codes that mean "the object, or multipart upload, is not there".
_MISSING = {"NoSuchKey", "NoSuchUpload", "404", "NotFound"}
# Error codes that mean the store is misconfigured: credentials, permissions, bucket.
_ACCESS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "403",
    "NoSuchBucket",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
}


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (empty, or ending in ``/``)."""

    bucket: str
    prefix: str


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/some/prefix`` -> ``S3Location("bucket", "some/prefix/")``."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"the S3 URL {url!r} names no bucket (expected s3://bucket/prefix)")
    prefix = prefix.strip("/")
    return S3Location(bucket, f"{prefix}/" if prefix else "")


def make_client(**overrides: Any) -> Any:
    """A boto3 S3 client configured by boto's chain; *overrides* go to ``client()``.

    Raises :class:`UsageError` when boto3 is not installed (the ``s3`` extra).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the installation
        raise UsageError("S3 storage needs boto3: pip install 'wirelab[s3]'") from None
    # Enough pooled connections for the worker threads that share the client; retries
    # in the standard mode (exponential back-off on throttling and 5xx); SigV4 for
    # presigned URLs too (boto3 would sign them with the legacy SigV2, which current
    # regions and many S3-compatible servers refuse).
    # No request checksums or response validation beyond what S3 requires: wirelab
    # verifies every blob's digest itself, and botocore's CRC32 of each body costs CPU.
    config = Config(
        max_pool_connections=_POOL_SIZE,
        retries={"mode": "standard", "max_attempts": 4},
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", config=config, **overrides)


# S3 requests wait on the network, not a CPU: they get threads of their own, as many as
# the client's pooled connections, so that they neither queue behind nor starve the
# default pool's few threads (CPU count + 4) that file I/O and hashing use.
_POOL_SIZE = 32
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="wirelab-s3")
    return _pool


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (or the lean client's
    :class:`._s3lean.LeanError`, shaped alike), else ``None``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code", "")) or None


def is_missing(exc: BaseException) -> bool:
    """Whether *exc* says that the key or multipart upload does not exist."""
    return error_code(exc) in _MISSING


def _translate(exc: Exception, what: str) -> Exception | None:
    """The wirelab error for a botocore error (``None``: not one to translate)."""
    import urllib3
    from botocore.exceptions import BotoCoreError, NoCredentialsError

    code = error_code(exc)
    if code in _ACCESS:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
        hint = (
            "check the bucket name in the storage URL"
            if code == "NoSuchBucket"
            else "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE) and the bucket's permissions"
        )
        return StorageAccessError(f"S3 refused {what}: {code} {message}".rstrip() + f"; {hint}")
    if isinstance(exc, NoCredentialsError):
        return StorageAccessError(
            f"S3 refused {what}: no credentials (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, BotoCoreError | urllib3.exceptions.HTTPError):
        # endpoint unreachable, bad configuration (urllib3's: the lean client's requests)
        return StorageAccessError(f"S3 failed {what}: {exc}")
    return None


async def call(what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` (a blocking boto3 call) in a worker thread.

    Credential, permission, bucket and connection failures become
    :class:`StorageAccessError` naming *what* was attempted; other errors (a missing
    key: see :func:`is_missing`) propagate unchanged for the caller to interpret.
    """

    def run() -> T:
        return func(*args, **kwargs)

    try:
        return await run_io(run, executor=_executor())
    except Exception as exc:
        translated = _translate(exc, what)
        if translated is None:
            raise
        raise translated from exc


class S3Reader(BlobReader):
    """A :class:`BlobReader` over one ranged GET, read in chunks in worker threads
    (*body*: ``read(n)`` and ``close()``, botocore's or the lean client's).

    The GET is sent when the reader is opened, so it reads a snapshot even if the object
    is deleted meanwhile (as long as the server keeps serving a started response).
    """

    def __init__(self, body: Any, *, key: str, size: int, start: int, end: int) -> None:
        super().__init__(key=key, size=size, start=start, end=end)
        self._body = body
        self._left = end - start

    async def __anext__(self) -> bytes:
        body = self._body
        if body is None or self._left <= 0:
            await self.aclose()
            raise StopAsyncIteration
        data: bytes = await call("a read", body.read, min(MAX_READ_CHUNK, self._left))
        if not data:
            await self.aclose()
            raise IntegrityError(f"blob {self.key!r} ended {self._left} bytes early")
        self._left -= len(data)
        return data

    async def aclose(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()


def iter_body(body: Any, size: int = MAX_READ_CHUNK) -> Iterator[bytes]:
    """Blocking iteration over a GET body in chunks of at most *size* (worker threads)."""
    try:
        while block := body.read(size):
            yield block
    finally:
        body.close()
