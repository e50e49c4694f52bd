"""Async operations on one bucket (each a blocking call in a worker thread), as the S3 store
uses them: single objects, multipart uploads, listings.

Single-object requests (GET, HEAD, PUT, DELETE) go through the lean client
(:mod:`._s3lean`) when the configuration allows it, else through boto3; both answer the
same way here (missing objects, :class:`PreconditionFailed`, errors for
:func:`._s3client.call` to map). Multipart uploads and listings are boto3's."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._hashing import rehash_hasher
from ._s3client import call, error_code, is_missing, iter_body
from ._s3lean import LeanError, LeanS3, lean_client, release

__all__ = ["Bucket", "Fetched", "PreconditionFailed", "is_precondition"]

T = TypeVar("T")

#: The most keys S3 removes in one DeleteObjects request.
_DELETE_BATCH = 1000

#: Keys per listing request (S3's maximum).
LIST_PAGE = 1000

#: The prefix of user metadata headers (botocore's ``Metadata`` dict has the names without).
_META = "x-amz-meta-"


class PreconditionFailed(Exception):
    """A conditional write (``If-None-Match: *``) found the key already taken."""


def is_precondition(exc: BaseException) -> bool:
    """Whether *exc* is the answer to a conditional write whose key was taken."""
    return error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}


@dataclass
class Fetched:
    """A GET in progress: the body to read (``read(n)``, ``close()``), the object's
    whole size, and its user metadata (names without ``x-amz-meta-``, lower case)."""

    body: Any
    size: int
    meta: Mapping[str, str]


class Bucket:
    """The bucket *name* through the boto3 *client* (and the lean client unless *lean* is
    false or the configuration needs botocore: :func:`._s3lean.lean_client`)."""

    def __init__(self, client: Any, name: str, *, lean: bool = True) -> None:
        self.client = client
        self.name = name
        self.lean: LeanS3 | None = lean_client(client, name) if lean else None

    def watch(self, listener: Callable[[str], None]) -> None:
        """Call *listener* with the operation's name (``"PutObject"``...) before each S3
        request, through either client (to count requests)."""
        if self.lean is not None:
            self.lean.listeners.append(listener)

        def before_call(model: Any, **_: Any) -> None:
            listener(model.name)

        self.client.meta.events.register("before-call.s3", before_call)

    async def get(self, key: str, what: str) -> bytes | None:
        """A small object's bytes, or ``None`` if it does not exist."""
        return await _unless_missing(what, self._get, key)

    def _get(self, key: str) -> bytes:
        if self.lean is not None:
            return self.lean.request("GET", key, operation="GetObject").data
        body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
        return b"".join(iter_body(body))

    async def head(self, key: str, what: str) -> Fetched | None:
        """The size and metadata of an object (no body), or ``None`` if it does not exist."""
        return await _unless_missing(what, self._head, key)

    def _head(self, key: str) -> Fetched:
        if self.lean is not None:
            response = self.lean.request("HEAD", key, operation="HeadObject")
            headers = response.headers
            return Fetched(None, int(headers.get("content-length", 0)), _metadata(headers))
        answer = self.client.head_object(Bucket=self.name, Key=key)
        return Fetched(None, int(answer["ContentLength"]), _lower(answer.get("Metadata", {})))

    async def exists(self, key: str, what: str) -> bool:
        return await self.head(key, what) is not None

    async def fetch(self, key: str, start: int, end: int | None, what: str) -> Fetched | None:
        """Start a GET of the bytes ``[start, end)`` (``end=None``: to the end) of an
        object, or ``None`` if it does not exist; a range past its end raises the
        server's ``InvalidRange`` error (:func:`._s3client.error_code`)."""
        whole = start == 0 and end is None
        wanted = None if whole else f"bytes={start}-{'' if end is None else end - 1}"
        return await _unless_missing(what, self._fetch, key, wanted)

    def _fetch(self, key: str, wanted: str | None) -> Fetched:
        if self.lean is not None:
            headers = {"range": wanted} if wanted else None
            response = self.lean.request(
                "GET", key, headers=headers, stream=True, operation="GetObject"
            )
            fields = response.headers
            size = _total(fields.get("content-range"), fields.get("content-length"))
            return Fetched(_LeanBody(response), size, _metadata(fields))
        extra = {"Range": wanted} if wanted else {}
        answer = self.client.get_object(Bucket=self.name, Key=key, **extra)
        size = _total(answer.get("ContentRange"), answer.get("ContentLength"))
        return Fetched(answer["Body"], size, _lower(answer.get("Metadata", {})))

    async def put(
        self,
        key: str,
        data: bytes,
        what: str,
        *,
        exclusive: bool = False,
        check: bool = True,
        meta: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> None:
        """Write an object; *exclusive*: only if the key is free (else
        :class:`PreconditionFailed`): atomically on servers that honour
        ``If-None-Match: *`` (AWS S3 and most others), and, unless *check* is false (the
        caller knows the key is new), checked by a HEAD first for those that ignore it
        (then two processes racing for one key both succeed). *meta*: user metadata;
        *sha256*: the hex SHA-256 of *data* if the caller has it (saves hashing it again
        to sign it)."""
        if exclusive and check and await self.exists(key, what):
            raise PreconditionFailed(key)
        try:
            await call(what, self.put_now, key, data, exclusive=exclusive, meta=meta, sha256=sha256)
        except Exception as exc:
            if is_precondition(exc):
                raise PreconditionFailed(key) from exc
            raise

    def put_now(
        self,
        key: str,
        data: bytes,
        *,
        exclusive: bool = False,
        meta: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> None:
        """Blocking: the PUT of :meth:`put` (no existence check, errors unmapped)."""
        if self.lean is not None:
            headers = {f"{_META}{name}": value for name, value in (meta or {}).items()}
            if exclusive:
                headers["if-none-match"] = "*"
            self.lean.request(
                "PUT", key, body=data, headers=headers, payload_sha256=sha256, operation="PutObject"
            )
            return
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if exclusive else {}
        if meta:
            extra["Metadata"] = dict(meta)
        self.client.put_object(Bucket=self.name, Key=key, Body=data, **extra)

    async def remove(self, key: str, what: str) -> None:
        """Remove an object (a missing one is not an error: S3 answers 204); other errors
        are raised."""
        await call(what, self._remove, key)

    def _remove(self, key: str) -> None:
        if self.lean is not None:
            self.lean.request("DELETE", key, operation="DeleteObject")
        else:
            self.client.delete_object(Bucket=self.name, Key=key)

    async def remove_many(self, keys: Sequence[str], what: str) -> None:
        """Remove objects (missing ones are not an error), up to 1,000 per DeleteObjects
        request; the first key the server could not remove raises (as a
        :class:`._s3lean.LeanError`, shaped like botocore's errors, that
        :func:`._s3client.call` maps)."""
        for first in range(0, len(keys), _DELETE_BATCH):
            chunk = keys[first : first + _DELETE_BATCH]
            await call(what, self._remove_many, chunk)

    def _remove_many(self, keys: Sequence[str]) -> None:
        if len(keys) == 1:  # one DELETE is cheaper than a DeleteObjects of one
            self._remove(keys[0])
            return
        objects = [{"Key": key} for key in keys]
        response = self.client.delete_objects(
            Bucket=self.name, Delete={"Objects": objects, "Quiet": True}
        )
        for error in response.get("Errors", ()):
            code = error.get("Code", "InternalError")
            message = f"{error.get('Key')}: {error.get('Message', code)}"
            raise LeanError(500, code, message, "DeleteObjects")

    async def delete(self, key: str, what: str) -> None:
        """Remove an object, best effort: no error is raised."""
        with contextlib.suppress(Exception):
            await self.remove(key, what)

    async def keys(self, prefix: str, what: str) -> list[str]:
        """Every key under *prefix*."""

        def listing() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.name, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", ())]

        return await call(what, listing)

    async def keys_within(self, prefix: str, pages: int, what: str) -> list[str] | None:
        """Every key under *prefix*, if a listing of at most *pages* requests (of up to
        1,000 keys each) gets them all; else ``None``."""

        def listing() -> list[str] | None:
            found: list[str] = []
            extra: dict[str, str] = {}
            for _ in range(pages):
                page = self.client.list_objects_v2(
                    Bucket=self.name, Prefix=prefix, MaxKeys=LIST_PAGE, **extra
                )
                found += [item["Key"] for item in page.get("Contents", ())]
                if not page.get("IsTruncated"):
                    return found
                extra = {"ContinuationToken": page["NextContinuationToken"]}
            return None

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
            hasher = rehash_hasher(algorithm)
            if size:
                for block in iter_body(self._fetch(key, None).body):
                    hasher.update(block)
            return hasher.hexdigest()

        return await call(what, digest)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Blocking: the bytes ``[start, end)`` of an object (``end > start``), whole."""
        return b"".join(self.body_chunks(key, start, end))

    def body_chunks(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Blocking: the bytes ``[start, end)`` of an object, in chunks (``end > start``)."""
        return iter_body(self._fetch(key, f"bytes={start}-{end - 1}").body)


async def _unless_missing(what: str, func: Callable[..., T], *args: Any) -> T | None:
    """:func:`call`, but ``None`` when the object is missing."""
    try:
        return await call(what, func, *args)
    except Exception as exc:
        if is_missing(exc):
            return None
        raise


class _LeanBody:
    """A streamed lean GET body: ``read(n)`` and ``close()`` as botocore's body has;
    the connection goes back to the pool when the body was read to its end."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def read(self, size: int) -> bytes:
        data: bytes = self._response.read(size)
        return data

    def close(self) -> None:
        response = self._response
        release(response, complete=response.length_remaining == 0)


def _metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """The user metadata among response *headers* (names without the prefix, lower case)."""
    return {k.lower()[len(_META) :]: v for k, v in headers.items() if k.lower().startswith(_META)}


def _lower(meta: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in meta.items()}


def _total(content_range: str | None, length: Any) -> int:
    """An object's whole size from a GET's ``Content-Range`` (``bytes a-b/total``), or its
    ``Content-Length`` when the answer has the whole object."""
    if content_range and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return int(length or 0)
