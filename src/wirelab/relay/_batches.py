"""Batches: several files from one sender to one recipient, delivered together.

A batch is a row in ``relay_batches`` plus one tus upload per file (owned by the sender,
``batch_id`` and ``batch_index`` set). Creation: reserve (journal) every key with its size
in one transaction (the quota sees the sum), create the partial uploads, then insert the
batch row and all upload rows in one transaction. A batch upload whose last byte arrives is
verified and committed as usual, but waits in state ``committed`` (journaled, invisible);
the commit of the last one delivers every file in one db transaction. Crash analysis:
``docs/relay.md``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._digests import empty_digest
from ..db import RelayBatch, RelayFile, RelayUpload
from ._errors import DigestConflict, FileTooLarge, RecipientNotFound, RelayError
from ._shared import exclusive_all
from ._uploads import new_id

if TYPE_CHECKING:
    from ._service import RelayService

__all__ = ["BatchDelivered", "BatchFile", "BatchGone", "BatchRequest", "Batches"]


class BatchGone(RelayError):
    """No such batch for the caller (or not yet delivered to the recipient)."""

    status_code = 404


class BatchDelivered(RelayError):
    """The batch was delivered: it can no longer be cancelled."""

    status_code = 409


@dataclass(frozen=True, slots=True)
class BatchFile:
    """One entry of a batch manifest (``name`` already sanitized)."""

    name: str
    size: int
    sha256: str | None = None
    media_type: str = "application/octet-stream"
    encryption: str | None = None
    #: The algorithm of ``sha256`` (a hex digest in it) and of the file's digest.
    digest_algorithm: str = "sha256"


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """What ``POST /v1/relay/batches`` declares."""

    owner: str
    recipient: str
    files: list[BatchFile]
    note: str | None = None
    ttl: float | None = None
    max_downloads: int | None = None


class Batches:
    """The batches of one :class:`RelayService`."""

    def __init__(self, service: RelayService) -> None:
        self.service = service

    async def create(self, req: BatchRequest) -> tuple[RelayBatch, list[RelayUpload]]:
        """Create the batch and its uploads; zero-length files are complete at once.

        Raises :class:`RecipientNotFound`, :class:`FileTooLarge` and
        :class:`DigestConflict` (naming the file's index), :class:`OverQuota` (the sum).
        """
        service = self.service
        if await service.db.users.get_user(req.recipient) is None:
            raise RecipientNotFound(f"no user named {req.recipient!r}")
        limit = service.limits.max_file_size
        for i, spec in enumerate(req.files):
            if spec.size > limit:
                raise FileTooLarge(f"files[{i}]: {spec.size} bytes exceed the maximum of {limit}")
            empty = empty_digest(spec.digest_algorithm)
            if spec.size == 0 and spec.sha256 not in (None, empty):
                raise DigestConflict(f"files[{i}]: an empty file hashes to {empty}")
        await service.check_space(sum(spec.size for spec in req.files))
        now = service.clock()
        batch = RelayBatch(
            id=new_id(),
            owner=req.owner,
            recipient=req.recipient,
            note=req.note,
            ttl=req.ttl,
            max_downloads=req.max_downloads,
            count=len(req.files),
            created_at=now,
            expires_at=now + service.limits.upload_expiry,
        )
        uploads = [_upload(batch, i, spec) for i, spec in enumerate(req.files)]
        async with exclusive_all(service, [u.id for u in uploads]):  # see _shared
            await service.reserve([(u.id, u.length) for u in uploads], req.recipient, req.owner)
            try:
                for upload in uploads:
                    await service.blobs.create_upload(upload.id, algorithm=upload.digest_algorithm)
                await service.db.relay.create_batch(batch, uploads)
            except BaseException:
                for upload in uploads:
                    with contextlib.suppress(Exception):
                        await service.discard(upload.id)
                raise
        for upload in uploads:
            if upload.length == 0:
                await service.uploads.complete(upload, empty_digest(upload.digest_algorithm))
        return batch, await service.db.relay.batch_uploads(batch.id)

    async def get(self, batch_id: str) -> RelayBatch | None:
        """The batch, unless it expired (then it is as good as swept)."""
        batch = await self.service.db.relay.get_batch(batch_id)
        if batch is None or batch.expires_at <= self.service.clock():
            return None
        return batch

    async def state(
        self, owner: str, batch_id: str
    ) -> tuple[RelayBatch, list[tuple[RelayUpload, int]]]:
        """The sender's view: the batch and each upload with its durable offset."""
        batch = await self.get(batch_id)
        if batch is None or batch.owner != owner:
            raise BatchGone(f"no batch {batch_id!r}")
        result = []
        for upload in await self.service.db.relay.batch_uploads(batch_id):
            offset = upload.length if upload.received else 0
            if not upload.received:
                with contextlib.suppress(RelayError):
                    offset = (await self.service.uploads.get(owner, upload.id))[1]
            result.append((upload, offset))
        return batch, result

    async def manifest(self, recipient: str, batch_id: str) -> tuple[RelayBatch, list[RelayFile]]:
        """The recipient's view of a delivered batch: its files still in the inbox."""
        batch = await self.get(batch_id)
        if batch is None or batch.recipient != recipient or batch.delivered_at is None:
            raise BatchGone(f"no batch {batch_id!r}")
        return batch, await self.service.db.relay.batch_files(batch_id, self.service.clock())

    async def cancel(self, owner: str, batch_id: str) -> None:
        """Delete an undelivered batch, its uploads and their bytes (rows first)."""
        batch = await self.get(batch_id)
        if batch is None or batch.owner != owner:
            raise BatchGone(f"no batch {batch_id!r}")
        if batch.delivered_at is not None:
            raise BatchDelivered(f"batch {batch_id!r} was delivered; acknowledge its files")
        service = self.service
        for key in await service.freeing(lambda: service.db.relay.delete_batch(batch_id)):
            await service.discard_exclusive(key)

    async def sweep(self) -> None:
        """Remove expired batches: undelivered ones with their uploads and bytes."""
        for key in await self.service.db.relay.delete_expired_batches(self.service.clock()):
            await self.service.discard_exclusive(key)


def _upload(batch: RelayBatch, index: int, spec: BatchFile) -> RelayUpload:
    return RelayUpload(
        id=new_id(),
        owner=batch.owner,
        recipient=batch.recipient,
        name=spec.name,
        media_type=spec.media_type,
        note=batch.note,
        length=spec.size,
        sha256=spec.sha256,
        created_at=batch.created_at,
        expires_at=batch.expires_at,
        max_downloads=batch.max_downloads,
        batch_id=batch.id,
        batch_index=index,
        encryption=spec.encryption,
        digest_algorithm=spec.digest_algorithm,
    )
