"""Resumable (tus) uploads of the relay: creation, appends, completion, termination.

An upload is a row in the db (``relay_uploads``: who sends what to whom) plus a partial
upload of the blob store with the same id, which is also the future blob key and file id.
Order of a creation: journal the key (with the quota reservation of ``length`` bytes),
create the partial upload, insert the row. Order of a completion: blob ``commit`` (digest
check, atomic rename), then one db transaction inserts the file row, drops the journal
entry (and so the reservation) and marks the upload row ``complete``; that row stays until
the upload's expiry so that its owner can still learn the outcome. The crash analysis is
in ``docs/relay.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._digests import DIGEST_LABELS, empty_digest
from .._exceptions import IntegrityError
from .._ids import token_urlsafe
from ..auth import UserNotFoundError
from ..db import RelayFile, RelayUpload
from ..storage import (
    BlobNotFoundError,
    StorageFullError,
    UploadNotFoundError,
)
from ._errors import (
    DigestConflict,
    FileTooLarge,
    InsufficientStorage,
    RecipientNotFound,
    RelayError,
)
from ._http import sanitize_filename
from ._shared import exclusive

if TYPE_CHECKING:
    from ._service import RelayService

__all__ = [
    "EMPTY_SHA256",
    "UploadExpired",
    "UploadGone",
    "UploadRequest",
    "Uploads",
    "checksum",
    "new_id",
    "resolve_digest",
]

#: The SHA-256 of zero bytes: the digest of every empty upload (in that algorithm).
EMPTY_SHA256 = empty_digest("sha256")


def new_id() -> str:
    """A random URL-safe id (128 bits), also valid as a blob key and upload id."""
    return token_urlsafe(16)


class UploadGone(RelayError):
    """No such upload of the caller (never created, finished, terminated or swept)."""

    status_code = 404


class UploadExpired(RelayError):
    """The upload expired; the sweeper removes it."""

    status_code = 410


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """What ``POST /v1/relay/uploads`` declares (``sha256`` may be deferred: ``None``;
    it is a hex digest in ``digest_algorithm``)."""

    owner: str
    recipient: str
    name: str
    media_type: str
    sha256: str | None
    length: int
    note: str | None = None
    max_downloads: int | None = None
    encryption: str | None = None
    digest_algorithm: str = "sha256"


def resolve_digest(announced: str | None, given: str | None) -> str | None:
    """The digest to verify at completion: the digest metadata or the completing
    PATCH's ``Wirelab-Digest`` / ``Wirelab-Sha256`` (lowercase hex, in the upload's
    algorithm); :class:`DigestConflict` if they differ."""
    if announced is not None and given is not None and announced != given:
        raise DigestConflict(
            f"the completing digest {given} differs from the upload's digest metadata"
            f" {announced}; nothing was stored"
        )
    return given if given is not None else announced


class Uploads:
    """The tus uploads of one :class:`RelayService`."""

    def __init__(self, service: RelayService) -> None:
        self.service = service
        #: upload id -> live streams of it in progress in this process (they count
        #: towards max_downloads)
        self.live_streams: Counter[str] = Counter()

    def _now(self) -> float:
        return self.service.clock()

    async def create(self, req: UploadRequest) -> tuple[RelayUpload, RelayFile | None]:
        """Record a new, empty upload and reserve its room in the recipient's quota.

        A length-0 upload is complete at once: the file is returned too (else ``None``).
        Raises :class:`RecipientNotFound`, :class:`FileTooLarge`,
        :class:`~wirelab.relay.OverQuota` and, for a length-0 upload whose ``sha256``
        is not the digest of nothing, :class:`DigestConflict` (nothing is created).
        """
        service = self.service
        if await service.db.users.get_user(req.recipient) is None:
            raise RecipientNotFound(f"no user named {req.recipient!r}")
        limit = service.limits.max_file_size
        if req.length > limit:
            raise FileTooLarge(f"Upload-Length {req.length} exceeds the maximum of {limit} bytes")
        empty = empty_digest(req.digest_algorithm)
        if req.length == 0 and req.sha256 not in (None, empty):
            raise DigestConflict(
                f"{DIGEST_LABELS[req.digest_algorithm]} mismatch: an empty upload hashes to"
                f" {empty}, its digest metadata says {req.sha256}; nothing was stored"
            )
        await service.check_space(req.length)
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
            max_downloads=req.max_downloads,
            encryption=req.encryption,
            digest_algorithm=req.digest_algorithm,
        )
        async with exclusive(service, upload.id, wait=False):  # see _shared (recovery)
            await service.reserve([(upload.id, upload.length)], upload.recipient, upload.owner)
            try:
                await service.blobs.create_upload(upload.id, algorithm=upload.digest_algorithm)
                await service.db.relay.insert_upload(upload)
            except BaseException:
                with contextlib.suppress(Exception):
                    await service.discard(upload.id)
                raise
        if upload.length:
            service.notify(upload.recipient)  # a waiting recipient may take it live
            return upload, None
        # A crash before this commit leaves a resumable empty upload that a PATCH at
        # offset 0 (empty body) completes.
        return upload, await self.complete(upload, empty)

    async def live_candidate(self, recipient: str) -> RelayUpload | None:
        """The oldest single upload in progress for ``recipient`` not yet offered live
        (by any server process: an atomic set-once mark that lasts as long as the upload
        may)."""
        now = self._now()
        waiting = [
            u
            for u in await self.service.db.relay.list_uploads()
            if u.recipient == recipient
            and u.state == "receiving"
            and u.batch_id is None
            and u.expires_at > now
        ]
        for upload in sorted(waiting, key=lambda u: u.created_at):
            if await self.service.coord.set_if_absent(f"live:{upload.id}", upload.expires_at - now):
                return upload
        return None

    async def get(self, owner: str, upload_id: str) -> tuple[RelayUpload, int]:
        """The upload and its durable offset; :class:`UploadGone`, :class:`UploadExpired`.

        A complete upload has offset ``length`` until its expiry, then it is gone (404):
        its record is kept only for its owner to learn the outcome.
        """
        upload = await self.service.db.relay.get_upload(upload_id)
        if upload is None or upload.owner != owner:
            raise UploadGone(f"no upload {upload_id!r}")
        expired = upload.expires_at <= self._now()
        if upload.complete and expired:
            raise UploadGone(f"no upload {upload_id!r}")
        if upload.received and not expired:
            return upload, upload.length
        if expired:
            raise UploadExpired(f"upload {upload_id!r} expired")
        try:
            offset = await self.service.blobs.upload_offset(upload_id)
        except UploadNotFoundError:
            raise UploadGone(f"no upload {upload_id!r}") from None
        return upload, offset

    async def append(
        self,
        upload: RelayUpload,
        offset: int,
        body: AsyncIterator[bytes],
        *,
        checksum: tuple[str, bytes] | None = None,
    ) -> int:
        """Append ``body`` at ``offset`` (raises ``OffsetMismatchError``); the new offset.

        More bytes than the announced length raise :class:`FileTooLarge`; the bytes up to
        the length are kept. With ``checksum`` (tus ``Upload-Checksum``: algorithm and
        digest), nothing is kept unless the whole body matches it
        (``ChecksumMismatchError``).

        The upload's quota reservation is renewed as the body arrives; if it had lapsed
        (no bytes for ``reservation_ttl``), it must fit in the recipient's quota again:
        :class:`~wirelab.relay.OverQuota` before the first byte is stored.
        """
        service = self.service
        body = service.renewing(upload.id, _capped(body, upload.length - offset))
        try:
            async with exclusive(service, upload.id):  # one writer across processes
                return await service.blobs.append(upload.id, offset, body, checksum=checksum)
        except StorageFullError as exc:
            durable = offset
            with contextlib.suppress(Exception):  # what arrived is durable up to here
                durable = await service.blobs.upload_offset(upload.id)
            raise InsufficientStorage(
                f"{exc}; the upload keeps its first {durable} bytes: resume later"
            ) from exc

    async def complete(self, upload: RelayUpload, sha256: str | None) -> RelayFile | None:
        """Verify a fully received upload against ``sha256`` and commit it; it becomes a
        file in the inbox, returned. ``sha256=None``: nothing was announced, the file's
        digest is the one the blob store computes. A batch's upload waits for the rest of its batch
        (``None``) unless it was the last one.

        On a mismatch (``DigestMismatchError``) a single upload is removed entirely; a
        batch's upload is reset to offset 0 (the batch stays completable).
        """
        async with exclusive(self.service, upload.id):
            return await self._complete(upload, sha256)

    async def _complete(self, upload: RelayUpload, sha256: str | None) -> RelayFile | None:
        service = self.service
        try:
            info = await service.blobs.commit(
                upload.id, upload.id, expected_sha256=sha256, algorithm=upload.digest_algorithm
            )
        except UploadNotFoundError:
            raise UploadGone(f"no upload {upload.id!r}") from None
        except StorageFullError as exc:  # every byte is kept: a retried PATCH completes
            raise InsufficientStorage(f"{exc}; retry the last PATCH later") from exc
        except BaseException:
            with contextlib.suppress(Exception):
                if upload.batch_id is None:
                    await self._terminate(upload)
                else:  # the key stays journaled; the row stays 'receiving'
                    await service.blobs.abort_upload(upload.id)
                    await service.blobs.create_upload(upload.id, algorithm=upload.digest_algorithm)
            raise
        digest = info.sha256 or sha256
        if digest is None:  # a store that neither verified nor computed a digest
            raise IntegrityError(f"no digest is known for upload {upload.id!r}")
        return await self._finish(upload, info.size, digest)

    async def _finish(self, upload: RelayUpload, size: int, sha256: str) -> RelayFile | None:
        now = self._now()
        if upload.batch_id is not None:
            files = await self.service.db.relay.commit_batch_upload(
                upload.id, sha256, now, self.service.limits.default_ttl
            )
            if files:
                self.service.notify(upload.recipient)
            elif await self.service.db.relay.get_upload(upload.id) is None:
                # The batch was cancelled while this file was committed: its blob is
                # garbage now (the cancel may have discarded the key before the commit).
                await self.service.db.relay.journal_add(upload.id, "delete", now)
                await self.service.discard(upload.id)
            return next((f for f in files if f.id == upload.id), None)
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
            max_downloads=upload.max_downloads,
            encryption=upload.encryption,
            digest_algorithm=upload.digest_algorithm,
        )
        try:
            await self.service.db.relay.finish_upload(upload.id, file)
        except UserNotFoundError:  # the recipient was removed: the bytes are garbage
            await self.service.db.relay.journal_add(upload.id, "delete", now)
            await self.service.discard(upload.id)
            raise UploadGone(f"no upload {upload.id!r}") from None
        self.service.notify(upload.recipient)
        return file

    async def terminate(self, upload: RelayUpload) -> None:
        """Delete the upload row, then its bytes, then its journal entry.

        A complete upload only loses its record: its bytes are the file's now. Waits for
        a request writing the upload (in any server process) to end.
        """
        async with exclusive(self.service, upload.id):
            await self._terminate(upload)

    async def _terminate(self, upload: RelayUpload) -> None:
        service = self.service
        await service.freeing(lambda: service.db.relay.delete_upload(upload.id))
        if not upload.complete:
            await service.discard(upload.id)

    async def recover(self, claim: Callable[[str], Awaitable[bool]]) -> set[str]:
        """After a crash: the ids of the uploads to keep (their journal keys stay).

        Expired uploads are removed. An upload whose blob commit finished but whose file
        row was not written (a crash in between) is finished now: its bytes are verified.
        Either happens only once ``claim(id)`` got the upload's lease (else another
        server process is working on it: kept), and on the upload as re-read then.
        """
        keep: set[str] = set()
        service = self.service
        renew = self._now() + service.limits.reservation_ttl
        partial = {info.upload_id for info in await service.blobs.list_uploads()}
        for upload in await service.db.relay.list_uploads():
            if upload.complete:
                continue  # a record only; the sweeper removes it at its expiry
            if upload.received:  # a batch's verified blob: kept while the batch lives
                keep.add(upload.id)
                continue
            if upload.expires_at > self._now() and upload.id in partial:
                keep.add(upload.id)  # a reservation held for good (older rows) lapses
                await service.db.relay.release_reservation(upload.id, renew)
                continue
            if not await claim(upload.id) or await self._recover_one(upload.id):
                keep.add(upload.id)
        return keep

    async def _recover_one(self, upload_id: str) -> bool:
        """Finish or remove an upload left by a crash (its lease held); whether to keep it."""
        service = self.service
        upload = await service.db.relay.get_upload(upload_id)  # moved on meanwhile?
        if upload is None or upload.complete:
            return False
        if upload.received:
            return True
        if upload.expires_at > self._now():
            with contextlib.suppress(UploadNotFoundError):
                await service.blobs.upload_offset(upload_id)
                return True  # created (or resumed) by another process meanwhile
        try:
            blob = await service.blobs.stat(upload.id)
        except BlobNotFoundError:
            await self._terminate(upload)
            return False
        # The blob commit verified the digest; the store records it beside the blob.
        await self._finish(upload, blob.size, blob.sha256 or upload.sha256 or "")
        return upload.batch_id is not None  # committed (or delivered: no longer journaled)

    async def sweep(self) -> int:
        """Remove expired uploads (the records of complete ones too); returns how many."""
        now = self._now()
        expired = [
            u
            for u in await self.service.db.relay.list_uploads()
            if u.expires_at <= now and (u.batch_id is None or u.complete)
        ]  # the uploads of undelivered batches go with their batch (Batches.sweep)
        removed = 0
        for upload in expired:
            with contextlib.suppress(RelayError):  # busy: written right now, next sweep
                async with exclusive(self.service, upload.id, wait=False):
                    await self._terminate(upload)
                    removed += 1
        return removed


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
