"""Resumable (tus) uploads of the relay: creation, appends, completion, termination.

An upload is a row in the db (``relay_uploads``: who sends what to whom) plus a partial
upload of the blob store with the same id, which is also the future blob key and file id.
Order of a creation: journal the key, create the partial upload, insert the row. Order of
a completion: blob ``commit`` (digest check, atomic rename), then one db transaction
inserts the file row and deletes the upload row and the journal entry. The crash analysis
is in ``docs/relay.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..db import RelayFile, RelayUpload
from ..storage import BlobNotFoundError, UploadNotFoundError
from ._errors import FileTooLarge, RecipientNotFound, RelayError
from ._http import sanitize_filename

if TYPE_CHECKING:
    from ._service import RelayService

__all__ = ["UploadExpired", "UploadGone", "UploadRequest", "Uploads", "checksum", "new_id"]


def new_id() -> str:
    """A random URL-safe id (128 bits), also valid as a blob key and upload id."""
    return secrets.token_urlsafe(16)


class UploadGone(RelayError):
    """No such upload of the caller (never created, finished, terminated or swept)."""

    status_code = 404


class UploadExpired(RelayError):
    """The upload expired; the sweeper removes it."""

    status_code = 410


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """What ``POST /v1/relay/uploads`` declares."""

    owner: str
    recipient: str
    name: str
    media_type: str
    sha256: str
    length: int
    note: str | None = None


class Uploads:
    """The tus uploads of one :class:`RelayService`."""

    def __init__(self, service: RelayService) -> None:
        self.service = service

    def _now(self) -> float:
        return self.service.clock()

    async def create(self, req: UploadRequest) -> RelayUpload:
        """Record a new, empty upload; :class:`RecipientNotFound`, :class:`FileTooLarge`."""
        service = self.service
        if await service.db.users.get_user(req.recipient) is None:
            raise RecipientNotFound(f"no user named {req.recipient!r}")
        limit = service.limits.max_file_size
        if req.length > limit:
            raise FileTooLarge(f"Upload-Length {req.length} exceeds the maximum of {limit} bytes")
        now = self._now()
        upload = RelayUpload(
            id=new_id(),
            owner=req.owner,
            recipient=req.recipient,
            name=sanitize_filename(req.name),
            media_type=req.media_type,
            note=req.note,
            length=req.length,
            sha256=req.sha256,
            created_at=now,
            expires_at=now + service.limits.upload_expiry,
        )
        await service.db.relay.journal_add(upload.id, "upload", now)
        try:
            await service.blobs.create_upload(upload.id)
            await service.db.relay.insert_upload(upload)
        except BaseException:
            with contextlib.suppress(Exception):
                await service.discard(upload.id)
            raise
        return upload

    async def get(self, owner: str, upload_id: str) -> tuple[RelayUpload, int]:
        """The upload and its durable offset; :class:`UploadGone`, :class:`UploadExpired`."""
        upload = await self.service.db.relay.get_upload(upload_id)
        if upload is None or upload.owner != owner:
            raise UploadGone(f"no upload {upload_id!r}")
        if upload.expires_at <= self._now():
            raise UploadExpired(f"upload {upload_id!r} expired")
        try:
            offset = await self.service.blobs.upload_offset(upload_id)
        except UploadNotFoundError:
            raise UploadGone(f"no upload {upload_id!r}") from None
        return upload, offset

    async def append(self, upload: RelayUpload, offset: int, body: AsyncIterator[bytes]) -> int:
        """Append ``body`` at ``offset`` (raises ``OffsetMismatchError``); the new offset.

        More bytes than the announced length raise :class:`FileTooLarge`; the bytes up to
        the length are kept.
        """
        return await self.service.blobs.append(
            upload.id, offset, _capped(body, upload.length - offset)
        )

    async def complete(self, upload: RelayUpload) -> RelayFile:
        """Verify and commit a fully received upload; it becomes a file in the inbox.

        On a digest mismatch (``DigestMismatchError``) the upload is removed entirely.
        """
        service = self.service
        try:
            info = await service.blobs.commit(upload.id, upload.id, expected_sha256=upload.sha256)
        except UploadNotFoundError:
            raise UploadGone(f"no upload {upload.id!r}") from None
        except BaseException:
            with contextlib.suppress(Exception):
                await self.terminate(upload)
            raise
        return await self._finish(upload, info.size, info.sha256 or upload.sha256)

    async def _finish(self, upload: RelayUpload, size: int, sha256: str) -> RelayFile:
        now = self._now()
        file = RelayFile(
            id=upload.id,
            recipient=upload.recipient,
            sender=upload.owner,
            name=upload.name,
            media_type=upload.media_type,
            note=upload.note,
            size=size,
            sha256=sha256,
            blob_key=upload.id,
            created_at=now,
            expires_at=now + self.service.limits.default_ttl,
        )
        await self.service.db.relay.finish_upload(upload.id, file)
        self.service.notify(upload.recipient)
        return file

    async def terminate(self, upload: RelayUpload) -> None:
        """Delete the upload row, then its bytes, then its journal entry."""
        await self.service.db.relay.delete_upload(upload.id)
        await self.service.discard(upload.id)

    async def recover(self) -> set[str]:
        """After a crash: the ids of the uploads to keep (their journal keys stay).

        Expired uploads are removed. An upload whose blob commit finished but whose file
        row was not written (a crash in between) is finished now: its bytes are verified.
        """
        keep: set[str] = set()
        service = self.service
        partial = {info.upload_id for info in await service.blobs.list_uploads()}
        for upload in await service.db.relay.list_uploads():
            if upload.expires_at > self._now() and upload.id in partial:
                keep.add(upload.id)
                continue
            try:
                blob = await service.blobs.stat(upload.id)
            except BlobNotFoundError:
                await self.terminate(upload)
                continue
            await self._finish(upload, blob.size, blob.sha256 or upload.sha256)
        return keep

    async def sweep(self) -> int:
        """Remove expired uploads; returns how many."""
        now = self._now()
        expired = [u for u in await self.service.db.relay.list_uploads() if u.expires_at <= now]
        for upload in expired:
            await self.terminate(upload)
        return len(expired)


async def _capped(body: AsyncIterator[bytes], room: int) -> AsyncIterator[bytes]:
    """Pass at most ``room`` bytes of ``body``; raise :class:`FileTooLarge` beyond."""
    async for chunk in body:
        if not chunk:
            continue
        if len(chunk) > room:
            if room:
                yield chunk[:room]
            raise FileTooLarge("the body goes past Upload-Length")
        room -= len(chunk)
        yield chunk


def checksum(algorithm: str, data: bytes) -> bytes:
    """The raw digest of ``data`` with a supported tus checksum algorithm."""
    return hashlib.new(algorithm, data).digest()
