"""The relay service: sending, inboxes, leases and expiry, over a db and a blob store.

A small direct send (``Content-Length`` at most ``inline_max``) is one db commit of the
row with its bytes (:mod:`wirelab.relay._inline`). Commit order of any other send (the
crash analysis is in ``docs/relay.md``):

1. journal the new blob key in the db (durable), with its quota reservation -- from now
   on a crash leaves garbage that the next start-up removes, never a leak;
2. stream the body into a partial upload of the blob store;
3. ``commit``: verify the digest (in the file's algorithm) and atomically turn the
   upload into the blob (fsynced);
4. insert the file row and drop the journal entry in one db transaction: the file
   becomes visible, complete and durable at this single instant.

Deleting (acknowledge, expiry) is the reverse: delete the row and journal the key in one
transaction, then delete the blob, then drop the journal entry.

Resumable (tus) uploads follow the same order across several requests; their journal
entries survive a restart while they have an upload row (:mod:`wirelab.relay._uploads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from ..auth import UserNotFoundError
from ..coord import Coordinator, EmbeddedCoordinator
from ..db import (
    Database,
    DatabaseFullError,
    PendingExceeded,
    PendingLimits,
    QuotaDefaults,
    QuotaExceeded,
    RelayFile,
    RelayUpload,
    Usage,
)
from ..storage import BlobReader, BlobStore, UploadNotFoundError
from ._batches import Batches
from ._errors import (
    FileNotFound,
    FileTooLarge,
    InsufficientStorage,
    OverQuota,
    RecipientNotFound,
    TooManyPending,
)
from ._http import sanitize_filename
from ._inline import BytesReader, receive_inline
from ._limits import RelayLimits
from ._reaper import Reaper
from ._shared import (
    exclusive,
    instance_name,
    recover,
    run_presence,
    run_sweeper,
    sweep_orphans,
)
from ._uploads import Uploads, new_id

__all__ = ["RelayService", "SendRequest", "new_id"]

_log = logging.getLogger("wirelab.relay")

_SWEEP_BATCH = 500

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What a sender declares about a file (the body comes separately, streamed)."""

    sender: str
    recipient: str
    name: str
    media_type: str
    sha256: str
    note: str | None = None
    ttl: float | None = None
    content_length: int | None = None
    max_downloads: int | None = None
    encryption: str | None = None
    #: The algorithm of ``sha256`` (the hex digest the sender announced).
    digest_algorithm: str = "sha256"


class RelayService:
    """One server process's relay. ``recover()`` at start-up, then serve, with
    ``run_background()`` running (the sweeper, when this process leads).

    What several processes share goes through ``coord`` (default: an embedded one, for a
    process that owns its data alone; see :mod:`wirelab.relay._shared`). Long polls
    listen to the topic ``inbox:<recipient>``, published when a file for that recipient
    is committed in any process; they wake by timeout when the earliest running lease of
    the recipient ends: no polling of the database.
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        limits: RelayLimits,
        *,
        clock: Callable[[], float] = time.time,
        coord: Coordinator | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.limits = limits
        self.clock = clock
        self.coord = coord if coord is not None else EmbeddedCoordinator()
        self.instance = instance_name()
        self.long_polls = 0  # waiting in next() in this process (for /healthz)
        self.uploads = Uploads(self)
        self.batches = Batches(self)
        self.reaper = Reaper(self._delete_blobs)

    async def recover(self) -> None:
        """Finish what a crash interrupted: a journaled blob key is garbage unless it
        belongs to a resumable upload in progress (those stay resumable) or another
        server process is writing it (see :func:`wirelab.relay._shared.recover`)."""
        await recover(self)

    async def run_background(self) -> None:
        """This process's part in the shared work until cancelled: its presence among the
        server processes, and the sweeper while it leads."""
        async with asyncio.TaskGroup() as group:
            group.create_task(run_presence(self))
            group.create_task(run_sweeper(self))

    async def close(self) -> None:
        """Finish the deletions still queued (see :mod:`._reaper`); call at shutdown."""
        await self.reaper.flush()

    async def discard(self, key: str) -> None:
        """Remove the partial upload and the blob ``key``, then its journal entry."""
        with contextlib.suppress(UploadNotFoundError):
            await self.blobs.abort_upload(key)
        await self.blobs.delete(key)
        await self.db.relay.journal_remove(key)

    @property
    def quota(self) -> QuotaDefaults:
        """The server's default inbox quotas."""
        return QuotaDefaults(bytes=self.limits.quota_bytes, files=self.limits.quota_files)

    async def reserve(self, keys: list[tuple[str, int]], recipient: str, sender: str) -> Usage:
        """Journal ``keys`` with their reservations in ``recipient``'s inbox (one file of
        ``size`` bytes each), charged to ``sender``, held for ``reservation_ttl`` (bytes
        renew them: :meth:`renewing`). :class:`TooManyPending` when the sender's
        allowance is used up, :class:`OverQuota` when they do not fit,
        :class:`RecipientNotFound` when there is no such recipient."""
        now = self.clock()
        limits = self.limits
        try:
            return await self.db.relay.reserve(
                keys,
                recipient,
                now,
                self.quota,
                sender=sender,
                pending=PendingLimits(limits.sender_pending_bytes, limits.sender_pending_uploads),
                until=now + limits.reservation_ttl,
            )
        except PendingExceeded as exc:
            raise TooManyPending(exc) from None
        except QuotaExceeded as exc:
            raise OverQuota(exc) from None
        except UserNotFoundError:
            raise RecipientNotFound(f"no user named {recipient!r}") from None

    async def send(self, req: SendRequest, body: AsyncIterator[bytes]) -> RelayFile:
        """Store ``body`` for ``req.recipient`` and return the visible file.

        Raises :class:`RecipientNotFound`, :class:`FileTooLarge` and :class:`OverQuota`
        (before any data is stored when ``content_length`` says so, else as soon as the
        limit is passed while streaming) and :class:`~wirelab.storage.DigestMismatchError`;
        on any failure nothing is kept. Without ``content_length`` the quota is checked
        again, atomically, when the file row is inserted (concurrent senders).
        """
        limit = self.limits.max_file_size
        size = req.content_length
        if size is not None and size <= min(limit, self.limits.inline_max):
            # Small: one database commit holds the bytes and the row (_inline.py); the
            # recipient and the quota are checked in that commit.
            file = await self._send_inline(req, _limited(body, limit, None))
            self.notify(req.recipient)
            return file
        # The recipient is checked by the reservation's commit (no read before it).
        if size is not None and size > limit:
            raise FileTooLarge(f"file of {size} bytes exceeds the maximum of {limit} bytes")
        await self.check_space(size or 0)
        file_id = new_id()
        async with exclusive(self, file_id, wait=False):  # see _shared (recovery)
            file = await self._send(req, file_id, body)
        self.notify(req.recipient)
        return file

    async def _send_inline(self, req: SendRequest, body: AsyncIterator[bytes]) -> RelayFile:
        content, digest = await receive_inline(body, req.sha256, req.digest_algorithm)
        file = self._new_file(req, new_id(), len(content), digest)
        try:
            await self.db.relay.insert_inline(file, content, self.quota)
        except UserNotFoundError:
            raise RecipientNotFound(f"no user named {req.recipient!r}") from None
        except QuotaExceeded as exc:
            raise OverQuota(exc) from None
        return replace(file, inline=True)

    def _new_file(self, req: SendRequest, file_id: str, size: int, digest: str) -> RelayFile:
        """The row of a direct send of ``size`` bytes, created now."""
        now = self.clock()
        return RelayFile(
            id=file_id,
            recipient=req.recipient,
            sender=req.sender,
            name=sanitize_filename(req.name),
            media_type=req.media_type,
            note=req.note,
            size=size,
            sha256=digest,
            blob_key=file_id,
            created_at=now,
            expires_at=now + (req.ttl if req.ttl is not None else self.limits.default_ttl),
            max_downloads=req.max_downloads,
            encryption=req.encryption,
            digest_algorithm=req.digest_algorithm,
        )

    async def _send(self, req: SendRequest, file_id: str, body: AsyncIterator[bytes]) -> RelayFile:
        key = file_id
        limit = self.limits.max_file_size
        reserved = self.clock()
        usage = await self.reserve([(key, req.content_length or 0)], req.recipient, req.sender)
        chunked = req.content_length is None
        try:
            quota = (req.recipient, usage) if chunked else None
            # The reservation was just made: the first renewal is due a quarter ttl on.
            chunks = self.renewing(key, _limited(body, limit, quota), renewed=reserved)
            # One step, no resumable upload: durable and verified on return (the
            # journal entry of reserve() removes what a crash leaves of it).
            # new_key: file ids are freshly generated (no request checks them: S3)
            info = await self.blobs.put(
                key,
                chunks,
                expected_sha256=req.sha256,
                algorithm=req.digest_algorithm,
                new_key=True,
            )
            file = self._new_file(req, file_id, info.size, info.sha256 or req.sha256)
            await self.db.relay.insert_file(file, self.quota if chunked else None)
        except UserNotFoundError:  # the recipient was removed while the body arrived
            with contextlib.suppress(Exception):
                await self.discard(key)
            raise RecipientNotFound(f"no user named {req.recipient!r}") from None
        except QuotaExceeded as exc:
            with contextlib.suppress(Exception):
                await self.discard(key)
            raise OverQuota(exc) from None
        except BaseException:
            # Best effort now; if this is interrupted too, the journal entry remains and
            # the next start-up removes the upload or blob.
            with contextlib.suppress(Exception):
                await self.discard(key)
            raise
        return file

    def notify(self, recipient: str) -> None:
        """Wake the long polls of ``recipient`` in every server process: a file was
        committed (or released, or an upload to them started)."""
        self.coord.publish(f"inbox:{recipient}")

    async def discard_exclusive(self, key: str) -> None:
        """:meth:`discard` once no request (in any server process) writes ``key``."""
        async with exclusive(self, key):
            await self.discard(key)

    async def inbox(self, recipient: str) -> list[RelayFile]:
        """The recipient's unexpired files, oldest first."""
        return await self.db.relay.list_inbox(recipient, self.clock())

    async def get(self, recipient: str, file_id: str) -> RelayFile:
        """File ``file_id`` of ``recipient``; :class:`FileNotFound` otherwise."""
        file = await self.db.relay.get_file(recipient, file_id, self.clock())
        if file is None:
            raise FileNotFound(f"no file {file_id!r} in your inbox")
        return file

    async def open(self, file: RelayFile, start: int, end: int) -> BlobReader:
        """A reader of the bytes ``[start, end)`` of ``file`` (from the database when it
        is inline); :class:`FileNotFound` when an inline file was deleted meanwhile."""
        if not file.inline:
            return await self.blobs.open(file.blob_key, start, end)
        content = await self.db.relay.read_content(file.id)
        if content is None:
            raise FileNotFound(f"no file {file.id!r} in your inbox")
        return BytesReader(content, key=file.id, start=start, end=end)

    async def count_download(self, file: RelayFile) -> None:
        """Count one download of ``file`` (its last byte was sent): one db write per
        download, never per chunk. Concurrent downloads that started below the limit all
        count, so ``downloads`` may end above ``max_downloads``. On a full disk the count
        may use the disk reserve; without one it is lost (logged): the bytes were sent."""
        try:
            await self.freeing(lambda: self.db.relay.count_download(file.id))
        except DatabaseFullError:
            _log.warning("the disk is full: download of %s not counted", file.id)

    async def renewing(
        self, key: str, body: AsyncIterator[bytes], *, renewed: float | None = None
    ) -> AsyncIterator[bytes]:
        """``body``, renewing ``key``'s quota reservation as its bytes arrive: at its
        first byte (a lapsed one must fit again: :class:`OverQuota` before that byte is
        stored) and then every quarter of ``reservation_ttl``. One db write per request
        in the usual case; a body that stalls lets the reservation lapse. ``renewed``:
        when the reservation was last made or renewed (then the first byte renews only
        if a quarter ttl has passed since)."""
        ttl = self.limits.reservation_ttl
        async for chunk in body:
            if not chunk:
                continue
            now = self.clock()
            if renewed is None or now - renewed >= ttl / 4:
                try:
                    await self.db.relay.hold_reservation(key, now, self.quota, now + ttl)
                except QuotaExceeded as exc:
                    raise OverQuota(exc) from None
                renewed = now
            yield chunk

    async def check_space(self, size: int) -> None:
        """:class:`InsufficientStorage` when ``size`` bytes do not fit on the disk now
        (beside the disk reserve); checked before any byte is accepted."""
        free = await self.blobs.free_bytes()
        if free is not None and size > free:
            raise InsufficientStorage(
                f"{size} bytes do not fit on the server's disk ({free} bytes free for"
                " uploads); try again later"
            )

    async def freeing(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op``, an operation that frees space (acknowledge, terminate, refuse,
        cancel). On a full disk its database write fails before anything is freed: then
        the disk reserve is released and ``op`` runs again; the reserve is restored by
        the sweeper once there is room."""
        try:
            return await op()
        except DatabaseFullError:
            if not await self.blobs.release_reserve():
                raise
            _log.warning("the disk is full: released the disk reserve to delete files")
        return await op()

    async def ack(self, recipient: str, file_id: str) -> RelayFile:
        """Delete file ``file_id`` of ``recipient`` (after it verified the download)."""
        now = self.clock()
        file = await self.freeing(lambda: self.db.relay.delete_file(recipient, file_id, now))
        if file is None:
            raise FileNotFound(f"no file {file_id!r} in your inbox")
        if not file.inline:  # an inline file's bytes went with its row
            await self._forget_blob(file.blob_key)
        return file

    async def release(self, recipient: str, file_id: str, lease_id: str | None) -> RelayFile:
        """End the lease on ``recipient``'s file ``file_id`` (only lease ``lease_id`` if
        given) so that ``next`` offers it again at once; :class:`FileNotFound` otherwise."""
        file = await self.db.relay.release_lease(recipient, file_id, lease_id, self.clock())
        if file is None:
            raise FileNotFound(f"no file {file_id!r} in your inbox")
        if file.lease_id is None:
            self.notify(recipient)  # a waiting `next` may take it now
        return file

    async def queued(
        self, sender: str, recipient: str, sha256: str, algorithm: str = "sha256"
    ) -> list[RelayFile]:
        """The files ``sender`` sent to ``recipient`` with this content (its digest in
        ``algorithm``), still queued."""
        return await self.db.relay.find_queued(sender, recipient, sha256, self.clock(), algorithm)

    async def _forget_blob(self, key: str) -> None:
        """Delete the blob of a file whose row is gone (and ``key`` journaled): later, in
        a batch, on a store that deletes in batches (:mod:`._reaper`); else now."""
        if self.blobs.batch_deletes:
            self.reaper.schedule(key)
        else:
            await self._delete_blobs([key])

    async def _delete_blobs(self, keys: Sequence[str]) -> None:
        """Delete the blobs ``keys`` of deleted files (committed: no upload has their
        keys), then their journal entries; on an error they stay journaled and the
        sweeper retries."""
        try:
            await self.blobs.delete_many(keys)
            await self.db.relay.journal_remove_many(keys)
        except Exception:  # the journal keeps the keys; the sweeper retries
            _log.exception("cannot delete %d relay blob(s), e.g. %s", len(keys), keys[0])

    async def _delete_journaled(self) -> None:
        """Delete the blobs still journaled for deletion (a deletion that failed, keys a
        process died with queued, a removed user's uploads), in batches. A key may still
        be a partial upload (a removed user's): it is aborted first, and a key whose abort
        fails stays journaled for the next sweep."""
        keys = []
        for key in await self.db.relay.journal_list("delete"):
            try:
                with contextlib.suppress(UploadNotFoundError):
                    await self.blobs.abort_upload(key)
            except Exception:  # the journal keeps the key; the sweeper retries
                _log.exception("cannot delete relay blob %s", key)
            else:
                keys.append(key)
        if keys:
            await self._delete_blobs(keys)

    async def next(
        self, recipient: str, lease: float, wait: float, *, live: bool = False
    ) -> RelayFile | RelayUpload | None:
        """Lease the oldest available file, waiting up to ``wait`` seconds for one.

        With ``live``, an upload in progress for ``recipient`` (see ``_live.py``) is
        returned when no stored file is available.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        self.long_polls += 1
        try:
            return await self._next(recipient, lease, deadline, live)
        finally:
            self.long_polls -= 1

    async def _next(
        self, recipient: str, lease: float, deadline: float, live: bool
    ) -> RelayFile | RelayUpload | None:
        loop = asyncio.get_running_loop()
        with self.coord.listen(f"inbox:{recipient}") as listener:
            while True:
                listener.clear()
                now = self.clock()
                file = await self.db.relay.lease_next(recipient, now, new_id(), now + lease)
                if file is not None:
                    return file
                if live and (upload := await self.uploads.live_candidate(recipient)):
                    return upload
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                lease_end = await self.db.relay.next_lease_end(recipient, now)
                if lease_end is not None:
                    remaining = min(remaining, max(0.0, lease_end - self.clock()) + 0.001)
                await listener.wait(remaining)

    async def sweep(self) -> int:
        """Remove expired files, blobs whose deletion failed, and stale partial uploads.

        Returns the number of expired files removed.
        """
        removed = 0
        while True:
            count, keys = await self.db.relay.delete_expired(self.clock(), _SWEEP_BATCH)
            if keys:
                await self._delete_blobs(keys)
            removed += count
            if count < _SWEEP_BATCH:
                break
        await self._delete_journaled()
        await sweep_orphans(self)  # what a process that died while others run left
        await self.batches.sweep()
        await self.uploads.sweep()
        await self.blobs.sweep_uploads(self.limits.upload_expiry, now=self.clock())
        await self.blobs.restore_reserve()
        return removed

    async def run_sweeper(self) -> None:
        """Call :meth:`sweep` every ``sweep_interval`` seconds while this process leads
        the sweep (in one process: always), until cancelled."""
        await run_sweeper(self)


async def _limited(
    body: AsyncIterator[bytes], limit: int, quota: tuple[str, Usage] | None
) -> AsyncIterator[bytes]:
    """Pass ``body`` through, raising :class:`FileTooLarge` once it exceeds ``limit`` and
    :class:`OverQuota` once it exceeds the room ``quota`` (recipient, usage) leaves."""
    room = None if quota is None else quota[1].limit_bytes - quota[1].used_bytes
    total = 0
    async for chunk in body:
        if not chunk:
            continue
        total += len(chunk)
        if total > limit:
            raise FileTooLarge(f"file exceeds the maximum of {limit} bytes")
        if quota is not None and room is not None and total > room:
            usage = quota[1]
            raise OverQuota(
                QuotaExceeded(quota[0], "bytes", usage.used_bytes, total, usage.limit_bytes)
            )
        yield chunk
