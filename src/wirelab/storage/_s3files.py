"""Blobs in one object, ``files/<key>``: what a direct send of at most a part stores.

A blob committed from an upload is a data object plus a pointer (:class:`._s3state.Pointer`):
the pointer names the multipart upload's target and records the digest. A direct send
does not need the indirection: its bytes are verified before they are sent, so the object
itself can be the blob, with its digest (``<algorithm>:<hex>``) in its user metadata.
That halves the requests of a relayed file: one PUT (no pointer, no existence check when
the key is new), one GET (no pointer read first), one DELETE (plus the pointer look-up
that finds the older form absent; when many blobs are deleted at once, one listing of
the pointers replaces those look-ups: :func:`pointed_among`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

from .._exceptions import IntegrityError
from ._base import BlobReader, check_range
from ._hashing import verify_digest
from ._pipeline import Hasher
from ._s3bucket import Bucket, Fetched, PreconditionFailed, is_precondition
from ._s3client import S3Reader, call, error_code
from ._s3state import Layout

__all__ = ["file_digest", "first_part", "open_file", "pointed_among", "write_file"]

#: The user metadata entry holding ``<algorithm>:<hex digest>``.
DIGEST = "wirelab-digest"


async def first_part(chunks: AsyncIterator[bytes], size: int) -> tuple[bytearray, bool]:
    """Collect *chunks* until *size* bytes or the end; the bytes, and whether the end came
    first (the rest, if any, is still to be read from *chunks*)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) >= size:
            return buffer, False
    return buffer, True


async def write_file(
    bucket: Bucket,
    object_key: str,
    data: bytes,
    hasher: Hasher,
    algorithm: str,
    expected: str | None,
    *,
    check: bool,
) -> str:
    """Hash *data*, verify it against *expected*, and store it as *object_key* with its
    digest; the digest. Nothing is sent if the digest does not match.

    The PUT carries ``If-None-Match: *`` (:class:`PreconditionFailed` where the server
    honours it); with *check* a HEAD first finds an existing object on servers that do
    not. The hashing and the PUT share one worker thread hop; a SHA-256 digest also
    signs the payload (:mod:`._s3lean`), so the body is hashed once."""
    if check and await bucket.exists(object_key, "checking a blob"):
        raise PreconditionFailed(object_key)

    def send() -> str:
        hasher.update(data)
        actual = hasher.hexdigest()
        verify_digest("the body", algorithm, expected, actual)
        meta = {DIGEST: f"{algorithm}:{actual}"}
        sha256 = actual if algorithm == "sha256" else None
        bucket.put_now(object_key, data, exclusive=True, meta=meta, sha256=sha256)
        return actual

    try:
        return await call("storing a file", send)
    except Exception as exc:
        if is_precondition(exc):
            raise PreconditionFailed(object_key) from exc
        raise


def file_digest(key: str, meta: Mapping[str, str]) -> tuple[str, str]:
    """The algorithm and hex digest recorded on the file of blob *key*."""
    algorithm, sep, digest = meta.get(DIGEST, "").partition(":")
    if not sep or not algorithm or not digest:
        raise IntegrityError(f"the S3 object of blob {key!r} has no digest in its metadata")
    return algorithm, digest


async def open_file(
    bucket: Bucket, object_key: str, key: str, start: int, end: int | None
) -> BlobReader | None:
    """A reader of ``[start, end)`` of the file of blob *key* (one ranged GET), or
    ``None`` if there is no such file. Range errors are :func:`check_range`'s."""
    what = "reading a blob"
    if start < 0 or (end is not None and end <= start):  # nothing to read: the size decides
        return await _empty(bucket, object_key, key, start, end)
    try:
        got = await bucket.fetch(object_key, start, end, what)
    except Exception as exc:
        if error_code(exc) != "InvalidRange":  # start at or past the end
            raise
        return await _empty(bucket, object_key, key, start, end)
    if got is None:
        return None
    try:
        first, stop = check_range(key, got.size, start, end)
    except BaseException:
        await _close(got)
        raise
    return S3Reader(got.body, key=key, size=got.size, start=first, end=stop)


async def _empty(
    bucket: Bucket, object_key: str, key: str, start: int, end: int | None
) -> BlobReader | None:
    """A reader of no bytes (or the range error) found by a HEAD of the file."""
    found = await bucket.head(object_key, "reading a blob")
    if found is None:
        return None
    first, stop = check_range(key, found.size, start, end)
    return S3Reader(None, key=key, size=found.size, start=first, end=stop)


async def _close(got: Fetched) -> None:
    with contextlib.suppress(Exception):
        await call("a read", got.body.close)


async def pointed_among(bucket: Bucket, layout: Layout, keys: Sequence[str]) -> Sequence[str]:
    """The keys among *keys* that may have the older form (a pointer), to look up one by
    one: those that a listing of the pointers shows, when the listing takes at most half
    as many requests as the look-ups would; else all of *keys*. A pointer is written
    before its blob is used, so a key deleted now cannot gain one after the listing."""
    pages = len(keys) // 2
    if pages == 0:
        return keys
    listed = await bucket.keys_within(layout.pointer(""), pages, "deleting blobs")
    if listed is None:
        return keys
    names = set(listed)
    return [key for key in keys if layout.pointer(key) in names]
