"""Async operations on one bucket (each a boto3 call in a worker thread), as the S3 store
uses them: small objects, multipart uploads, listings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._hashing import bulk_hasher
from ._s3client import call, error_code, is_missing, iter_body

__all__ = ["Bucket", "PreconditionFailed"]


class PreconditionFailed(Exception):
    """A conditional write (``If-None-Match: *``) found the key already taken."""


class Bucket:
    """The bucket *name* through the boto3 *client*."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    async def get(self, key: str, what: str) -> bytes | None:
        """A small object's bytes, or ``None`` if it does not exist."""
        try:
            response = await call(what, self.client.get_object, Bucket=self.name, Key=key)
            body = response["Body"]
            return await call(what, lambda: b"".join(iter_body(body)))
        except Exception as exc:
            if is_missing(exc):
                return None
            raise

    async def exists(self, key: str, what: str) -> bool:
        try:
            await call(what, self.client.head_object, Bucket=self.name, Key=key)
        except Exception as exc:
            if is_missing(exc):
                return False
            raise
        return True

    async def put(self, key: str, data: bytes, what: str, *, exclusive: bool = False) -> None:
        """Write an object; *exclusive*: only if the key is free (else
        :class:`PreconditionFailed`): atomically on servers that honour
        ``If-None-Match: *`` (AWS S3 and most others), and checked by a HEAD first for
        those that ignore it (then two processes racing for one key both succeed)."""
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        if exclusive and await self.exists(key, what):
            raise PreconditionFailed(key)
        try:
            await call(what, self.client.put_object, Bucket=self.name, Key=key, Body=data, **extra)
        except Exception as exc:
            if error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise PreconditionFailed(key) from exc
            raise

    async def delete(self, key: str, what: str) -> None:
        """Remove an object; a missing one is not an error."""
        with contextlib.suppress(Exception):
            await call(what, self.client.delete_object, Bucket=self.name, Key=key)

    async def keys(self, prefix: str, what: str) -> list[str]:
        """Every key under *prefix*."""

        def listing() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.name, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", ())]

        return await call(what, listing)

    async def multipart_ids(self, key: str, what: str) -> list[str]:
        """The ids of the multipart uploads in progress whose target is *key* (none on
        servers without ListMultipartUploads, such as ``rclone serve s3``)."""
        try:
            response = await call(
                what, self.client.list_multipart_uploads, Bucket=self.name, Prefix=key
            )
        except Exception as exc:
            if is_missing(exc) or error_code(exc) in {"NotImplemented", "501"}:
                return []
            raise
        return [u["UploadId"] for u in response.get("Uploads", ()) if u["Key"] == key]

    async def abort_multipart(self, key: str, multipart_id: str, what: str) -> None:
        try:
            await call(
                what,
                self.client.abort_multipart_upload,
                Bucket=self.name,
                Key=key,
                UploadId=multipart_id,
            )
        except Exception as exc:
            if not is_missing(exc):
                raise

    async def hash_object(self, key: str, size: int, algorithm: str, what: str) -> str:
        """The hex digest in *algorithm* of an object, read in chunks."""

        def digest() -> str:
            hasher = bulk_hasher(algorithm)
            if size:
                response = self.client.get_object(Bucket=self.name, Key=key)
                for block in iter_body(response["Body"]):
                    hasher.update(block)
            return hasher.hexdigest()

        return await call(what, digest)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Blocking: the bytes ``[start, end)`` of an object (``end > start``), whole."""
        return b"".join(self.body_chunks(key, start, end))

    def body_chunks(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Blocking: the bytes ``[start, end)`` of an object, in chunks (``end > start``)."""
        response = self.client.get_object(
            Bucket=self.name, Key=key, Range=f"bytes={start}-{end - 1}"
        )
        return iter_body(response["Body"])
