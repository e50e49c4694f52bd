"""`LocalBlobStore`: the default :class:`BlobStore`, a folder on the local file system.

Layout under ``root``::

    uploads/<upload_id>.data   the bytes received so far (may hold a torn tail after a crash)
    uploads/<upload_id>.json   the record: durable offset, created_at, updated_at
    blobs/<xx>/<key>           committed blobs; xx = first 2 hex digits of sha256(key)
    blobs/<xx>/<key>.sha256    the blob's digest, written before the blob appears: ``HEX``
                               for SHA-256 (as before digests had names), else
                               ``ALGORITHM HEX``
    tmp/                       temporary files (removed by recover())
    reserve                    space kept for deletes on a full disk (``_space.py``)

Durability, what survives SIGKILL (and, given a file system that honours fsync, a power
loss):

* ``append`` writes the data, fsyncs it, *then* atomically replaces the record with the
  new offset (temp file + fsync + rename + directory fsync). The record therefore never
  counts a byte that is not on disk; bytes beyond it are a torn tail that every append
  and ``recover()`` truncate away. Long appends checkpoint every ``checkpoint_bytes``
  (a checkpoint covers the writes completed before it, one batch behind what arrived;
  it runs in a worker thread while the body keeps arriving, one checkpoint at a time).
  The writes run behind the receiving (:mod:`wirelab.storage._pipeline`): one batch is
  written and hashed in worker threads while the next one arrives. An append with a
  ``checksum`` has no checkpoint: its record is written only once the checksum matched.
* An upload exists iff its record exists; ``create_upload`` writes the empty data file
  first, the record last.
* ``commit`` re-checks the length, verifies the digest, writes the
  digest file, then renames the data file into ``blobs/`` (atomic: the blob is never half
  visible) and fsyncs both directories before removing the record. A crash before the
  rename leaves the upload intact; after it, ``recover()`` drops the stale record.
* ``put`` (a direct send, never resumed) skips the upload: it writes the blob in place
  (created exclusively), verifies it, ``fdatasync``s it, then fsyncs its folder, that
  fsync shared by concurrent puts (:mod:`wirelab.storage._groupsync`).
  It writes no digest file. The caller journals the key before and deletes it after a
  crash. The 256 fan-out folders are created by ``recover()``, so no put creates one.
* ``delete`` unlinks the blob, then its digest file, then fsyncs the directory.

The digest that ``commit`` checks comes from a *running hash* (in the algorithm
``create_upload`` was given) when the appends that
wrote every byte of the upload ran in this store instance, one after the other from
offset 0: then ``commit`` does not read the file again. The running hash is kept only
while it covers exactly the bytes below the durable offset (and is in the algorithm
``commit`` asks for): an append whose write or
fsync failed drops it (it may have consumed bytes that were never made durable), and a
new instance (a restart) has none. It is trusted only while the upload's record is the
one this instance last wrote (same offset and ``updated_at``): another process that
appended to, or re-created, the upload (several server processes share a folder, one
writer at a time by their leases) leaves it stale, and then the bytes are read again.
Without it ``commit`` re-reads the file in 1 MiB chunks. An append interrupted by its
client keeps it, since what arrived is made durable.

One process owns a root at a time, or several that coordinate (one writer per upload, and
``recover()`` only while no other runs: see ``wirelab.relay._shared``); call
``await store.recover()`` at startup.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import weakref
from asyncio import Lock
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import IntegrityError, UsageError
from .._fsio import atomic_write, fsync_dir
from ._base import (
    MAX_READ_CHUNK,
    BlobExistsError,
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    BlobStore,
    UploadExistsError,
    UploadInfo,
    UploadNotFoundError,
    check_offset,
    check_range,
    validate_name,
)
from ._direct import write_new
from ._fsutil import LocalReader, remove_tmp_files, run_io
from ._groupsync import DirSync
from ._hashing import (
    bulk_hasher,
    check_checksum,
    checksum_hasher,
    expected_digest,
    known_algorithm,
    parse_sidecar,
    rehash_hasher,
    sidecar,
    verify_digest,
)
from ._pipeline import (
    Background,
    Batches,
    Hasher,
    WriteBehind,
    settle,
    write_batches,
)
from ._space import DiskReserve, no_space

__all__ = ["LocalBlobStore"]


@dataclass
class _Progress:
    """The durable state of an append in progress (what the record on disk says)."""

    info: UploadInfo


_FANOUT = [f"{i:02x}" for i in range(256)]


class LocalBlobStore(BlobStore):
    """A :class:`BlobStore` in the folder *root* (created if missing); see the module doc."""

    def __init__(
        self, root: Path, *, checkpoint_bytes: int = 8 * 1024 * 1024, reserve_bytes: int = 0
    ) -> None:
        if checkpoint_bytes < 1:
            raise UsageError("checkpoint_bytes must be positive")
        self.root = Path(root)
        self._reserve = DiskReserve(self.root / "reserve", reserve_bytes)
        self._uploads = self.root / "uploads"
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        # 0700: users' files (existing folders keep their mode)
        for directory in (self.root, self._uploads, self._blobs, self._tmp):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._checkpoint = checkpoint_bytes
        self._locks: weakref.WeakValueDictionary[str, Lock] = weakref.WeakValueDictionary()
        # upload id -> (record written, algorithm, hash of bytes [0, record.offset)) for
        # appends made by this instance
        self._hashes: dict[str, tuple[UploadInfo, str, Hasher]] = {}
        self._dir_sync = DirSync()

    # -- paths and records -------------------------------------------------------------

    def _lock(self, name: str) -> Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = Lock()
        return lock

    def _data_path(self, upload_id: str) -> Path:
        return self._uploads / f"{upload_id}.data"

    def _record_path(self, upload_id: str) -> Path:
        return self._uploads / f"{upload_id}.json"

    def _blob_path(self, key: str) -> Path:
        fanout = hashlib.sha256(key.encode()).hexdigest()[:2]
        return self._blobs / fanout / key

    def _read_record(self, upload_id: str) -> UploadInfo:
        try:
            raw = json.loads(self._record_path(upload_id).read_bytes())
        except FileNotFoundError:
            raise UploadNotFoundError(f"no upload {upload_id!r}") from None
        return UploadInfo(upload_id, int(raw["offset"]), raw["created_at"], raw["updated_at"])

    def _write_record(self, info: UploadInfo) -> None:
        body = {"offset": info.offset, "created_at": info.created_at, "updated_at": info.updated_at}
        path = self._record_path(info.upload_id)
        atomic_write(path, json.dumps(body).encode(), tmp_dir=self._uploads)

    # -- blocking steps (run in worker threads) ----------------------------------------

    def _create_sync(self, upload_id: str) -> UploadInfo:
        if self._record_path(upload_id).exists():
            raise UploadExistsError(f"upload {upload_id!r} already exists")
        fd = os.open(self._data_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        now = time.time()
        info = UploadInfo(upload_id, 0, now, now)
        self._write_record(info)  # fsyncs the directory, so the data file entry too
        return info

    def _open_at(self, upload_id: str, offset: int) -> int:
        fd = os.open(self._data_path(upload_id), os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)  # drop a torn tail beyond the durable offset
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _make_durable(self, fd: int, info: UploadInfo, offset: int) -> UploadInfo:
        os.fsync(fd)
        new = UploadInfo(info.upload_id, offset, info.created_at, time.time())
        self._write_record(new)
        return new

    def _hash_file(self, upload_id: str, length: int, algorithm: str) -> str:
        hasher = rehash_hasher(algorithm)
        with open(self._data_path(upload_id), "rb") as f:
            remaining = length
            while remaining:
                block = f.read(min(MAX_READ_CHUNK, remaining))
                if not block:
                    raise IntegrityError(f"upload {upload_id!r} is shorter than its offset")
                hasher.update(block)
                remaining -= len(block)
        return hasher.hexdigest()

    def _commit_sync(self, info: UploadInfo, key: str, digest: str, algorithm: str) -> None:
        data, blob = self._data_path(info.upload_id), self._blob_path(key)
        if blob.exists():
            raise BlobExistsError(f"blob {key!r} already exists")
        fd = os.open(data, os.O_WRONLY)
        try:
            os.ftruncate(fd, info.offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._blob_dir_sync(blob)
        digest_file = blob.with_name(f"{key}.sha256")
        atomic_write(digest_file, sidecar(digest, algorithm), tmp_dir=self._tmp, sync_dir=False)
        os.rename(data, blob)  # the commit point: the blob appears whole
        fsync_dir(blob.parent)
        fsync_dir(self._uploads)
        self._record_path(info.upload_id).unlink()
        fsync_dir(self._uploads)

    def _blob_dir_sync(self, blob: Path) -> None:
        """Create the fan-out folder of *blob* durably, if missing."""
        if not blob.parent.is_dir():
            blob.parent.mkdir(exist_ok=True, mode=0o700)
            fsync_dir(self._blobs)

    def _remove_upload_sync(self, upload_id: str) -> None:
        self._record_path(upload_id).unlink()  # the upload ceases to exist here
        with contextlib.suppress(FileNotFoundError):
            self._data_path(upload_id).unlink()
        fsync_dir(self._uploads)

    def _recover_sync(self) -> None:
        # Every fan-out folder exists from the start, so that no send pays for creating
        # one (and for the fsync of blobs/ that makes it durable).
        missing = [d for d in _FANOUT if not (self._blobs / d).is_dir()]
        for name in missing:
            (self._blobs / name).mkdir(exist_ok=True, mode=0o700)
        if missing:
            fsync_dir(self._blobs)
        remove_tmp_files(self._tmp)
        remove_tmp_files(self._uploads)
        names = {entry.name for entry in os.scandir(self._uploads)}
        for name in names:
            stem, _, suffix = name.rpartition(".")
            if suffix == "data" and f"{stem}.json" not in names:
                os.unlink(self._uploads / name)  # a create_upload that did not finish
            elif suffix == "json":
                self._recover_upload(stem, f"{stem}.data" in names)
        fsync_dir(self._uploads)

    def _recover_upload(self, upload_id: str, has_data: bool) -> None:
        if not has_data:  # a commit moved the data into blobs/ just before the crash
            self._record_path(upload_id).unlink()
            return
        info = self._read_record(upload_id)
        fd = os.open(self._data_path(upload_id), os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            if size > info.offset:
                os.ftruncate(fd, info.offset)
                os.fsync(fd)
            elif size < info.offset:  # only if the file system lost fsynced data
                self._make_durable(fd, info, size)
        finally:
            os.close(fd)

    def _stat_sync(self, key: str) -> BlobInfo:
        blob = self._blob_path(key)
        try:
            size = blob.stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {key!r}") from None
        try:
            algorithm, digest = parse_sidecar(blob.with_name(f"{key}.sha256").read_text())
        except FileNotFoundError:
            return BlobInfo(key, size, None)
        return BlobInfo(key, size, digest, algorithm)

    def _open_sync(self, key: str, start: int, end: int | None) -> LocalReader:
        try:
            fd = os.open(self._blob_path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {key!r}") from None
        try:
            size = os.fstat(fd).st_size
            first, stop = check_range(key, size, start, end)
        except BaseException:
            os.close(fd)
            raise
        return LocalReader(fd, key=key, size=size, start=first, end=stop)

    def _open_upload_sync(self, upload_id: str, start: int, end: int) -> LocalReader:
        info = self._read_record(upload_id)
        first, stop = check_range(upload_id, info.offset, start, end)
        try:
            fd = os.open(self._data_path(upload_id), os.O_RDONLY)
        except FileNotFoundError:  # committed (renamed) or removed in between
            raise UploadNotFoundError(f"no upload {upload_id!r}") from None
        return LocalReader(fd, key=upload_id, size=info.offset, start=first, end=stop)

    def _delete_sync(self, key: str) -> None:
        blob = self._blob_path(key)
        for path in (blob, blob.with_name(f"{key}.sha256")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if blob.parent.is_dir():
            fsync_dir(blob.parent)

    def _list_sync(self) -> list[UploadInfo]:
        infos = []
        for path in self._uploads.glob("*.json"):
            with contextlib.suppress(UploadNotFoundError):
                infos.append(self._read_record(path.stem))
        return infos

    # -- the BlobStore interface -------------------------------------------------------

    async def recover(self) -> None:
        self._hashes.clear()
        await run_io(self._recover_sync)
        await self.restore_reserve()

    async def free_bytes(self) -> int | None:
        return await run_io(self._reserve.available)

    async def release_reserve(self) -> bool:
        return await run_io(self._reserve.release)

    async def restore_reserve(self) -> None:
        await run_io(self._reserve.restore)

    async def create_upload(self, upload_id: str, *, algorithm: str = "sha256") -> UploadInfo:
        validate_name(upload_id, "upload id")
        known_algorithm(algorithm)
        async with self._lock(upload_id):
            with no_space("a new upload"):
                info = await run_io(self._create_sync, upload_id)
            self._hashes[upload_id] = (info, algorithm, bulk_hasher(algorithm))
            return info

    async def upload_offset(self, upload_id: str) -> int:
        validate_name(upload_id, "upload id")
        return (await run_io(self._read_record, upload_id)).offset

    async def append(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        *,
        checksum: tuple[str, bytes] | None = None,
    ) -> int:
        validate_name(upload_id, "upload id")
        check = checksum_hasher(checksum)
        async with self._lock(upload_id):
            info = await run_io(self._read_record, upload_id)
            check_offset(upload_id, info.offset, offset)
            # The running hash serves only if it covers exactly [0, durable offset). It
            # leaves the cache for the append and comes back only if every byte it
            # consumed was made durable.
            cached = self._hashes.pop(upload_id, None)
            hasher = cached[2] if cached is not None and cached[0] == info else None
            hashers = [h for h in (hasher, check) if h is not None]
            fd = await run_io(self._open_at, upload_id, offset)
            writer = WriteBehind(fd, offset, hashers)
            progress = _Progress(info)
            try:
                with no_space("the upload's bytes"):
                    if check is None:
                        await self._append_chunks(writer, progress, chunks)
                    else:
                        assert checksum is not None
                        await self._append_checked(writer, progress, chunks, check, checksum)
            finally:
                writer.close_when_idle()
                durable = progress.info.offset
                kept = cached is not None and hasher is not None and not writer.failed
                if kept and writer.written == durable:
                    assert cached is not None and hasher is not None
                    self._hashes[upload_id] = (progress.info, cached[1], hasher)
                if writer.failed:  # free what the failed writes took (a full disk) now
                    with contextlib.suppress(OSError):
                        await run_io(os.truncate, self._data_path(upload_id), durable)
            return progress.info.offset

    async def _append_checked(
        self,
        writer: WriteBehind,
        progress: _Progress,
        chunks: AsyncIterator[bytes],
        check: Hasher,
        checksum: tuple[str, bytes],
    ) -> None:
        """An all-or-nothing append: no checkpoint, and the bytes become durable only
        once their checksum matched (else they stay a torn tail, cut by the next append,
        commit or recover)."""
        await write_batches(writer, chunks)
        check_checksum(check, checksum)
        if writer.written != progress.info.offset:
            await self._durable(writer, progress)

    def _durable_sync(self, writer: WriteBehind, info: UploadInfo, offset: int) -> UploadInfo:
        try:
            return self._make_durable(writer.fd, info, offset)
        except BaseException:
            # After a failed fsync the kernel may have dropped the dirty pages, so a
            # retry could "succeed" without the data: never record this append's bytes.
            # (Set here, in the thread: the awaiting task may have been cancelled.)
            writer.failed = True
            raise

    async def _durable(self, writer: WriteBehind, progress: _Progress) -> None:
        """fsync what the completed writes wrote and record it as the durable offset."""
        progress.info = await run_io(self._durable_sync, writer, progress.info, writer.written)

    def _checkpoint_sync(self, writer: WriteBehind, progress: _Progress, offset: int) -> None:
        """A checkpoint in a worker thread: the writes below *offset* have completed;
        later ones may run meanwhile (fsync covers them too, the record does not)."""
        progress.info = self._durable_sync(writer, progress.info, offset)

    async def _append_chunks(
        self, writer: WriteBehind, progress: _Progress, chunks: AsyncIterator[bytes]
    ) -> None:
        batches = Batches()
        # One checkpoint at a time runs behind the receiving, so records only grow.
        checkpoint = Background()
        try:
            async for chunk in chunks:
                if batches.add(chunk):
                    await writer.submit(batches.pending)  # returns while it is written
                    batches.submitted()
                    due = writer.written - progress.info.offset >= self._checkpoint
                    if due and checkpoint.idle:
                        await checkpoint.collect()  # done: raises its error, if any
                        checkpoint.start(self._checkpoint_sync, writer, progress, writer.written)
            await writer.submit(batches.pending)
            await writer.drain()
            await checkpoint.collect()
        except BaseException:
            await checkpoint.settle()  # a failed checkpoint set writer.failed
            if not await settle(writer):
                raise  # our own I/O failed: the record keeps the last durable offset
            # The client went away (or we were cancelled between chunks): make what
            # arrived durable so that the client can resume from there.
            await writer.submit(batches.pending)
            await writer.drain()
            if writer.written != progress.info.offset:
                await self._durable(writer, progress)
            raise
        if writer.written != progress.info.offset:
            await self._durable(writer, progress)

    async def open_upload(self, upload_id: str, start: int, end: int) -> BlobReader:
        validate_name(upload_id, "upload id")
        return await run_io(self._open_upload_sync, upload_id, start, end)

    async def commit(
        self, upload_id: str, key: str, *, expected_sha256: str | None, algorithm: str = "sha256"
    ) -> BlobInfo:
        validate_name(upload_id, "upload id")
        validate_name(key, "key")
        expected = expected_digest(expected_sha256, algorithm)
        async with self._lock(upload_id), self._lock(f"blob:{key}"):
            info = await run_io(self._read_record, upload_id)
            cached = self._hashes.get(upload_id)
            if cached is not None and cached[:2] == (info, algorithm):
                actual = cached[2].hexdigest()
            else:
                actual = await run_io(self._hash_file, upload_id, info.offset, algorithm)
            verify_digest(f"upload {upload_id!r}", algorithm, expected, actual)
            with no_space("the committed file"):
                await run_io(self._commit_sync, info, key, actual, algorithm)
            self._hashes.pop(upload_id, None)
            return BlobInfo(key, info.offset, actual, algorithm)

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        expected_sha256: str | None,
        algorithm: str = "sha256",
        new_key: bool = False,
    ) -> BlobInfo:
        """One-step store (:mod:`._direct`): the blob's own fdatasync, then one directory
        fsync shared with concurrent puts. No digest file: :meth:`stat` says ``None``
        (the caller keeps the digest with its metadata). *new_key* changes nothing here:
        the exclusive create checks the key for free."""
        validate_name(key, "key")
        expected = expected_digest(expected_sha256, algorithm)
        blob = self._blob_path(key)
        hasher = bulk_hasher(algorithm)

        async with self._lock(f"blob:{key}"):
            with no_space("the file's bytes"):
                await run_io(self._blob_dir_sync, blob)
                try:
                    size = await write_new(blob, chunks, hasher, algorithm, expected)
                except FileExistsError:
                    raise BlobExistsError(f"blob {key!r} already exists") from None
                try:
                    await self._dir_sync.sync(blob.parent)
                except BaseException:
                    await run_io(self._delete_sync, key)
                    raise
        return BlobInfo(key, size, hasher.hexdigest(), algorithm)

    async def abort_upload(self, upload_id: str) -> None:
        validate_name(upload_id, "upload id")
        async with self._lock(upload_id):
            self._hashes.pop(upload_id, None)
            try:
                await run_io(self._remove_upload_sync, upload_id)
            except FileNotFoundError:
                raise UploadNotFoundError(f"no upload {upload_id!r}") from None

    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        validate_name(key, "key")
        return await run_io(self._open_sync, key, start, end)

    async def stat(self, key: str) -> BlobInfo:
        validate_name(key, "key")
        return await run_io(self._stat_sync, key)

    async def delete(self, key: str) -> None:
        validate_name(key, "key")
        async with self._lock(f"blob:{key}"):
            await run_io(self._delete_sync, key)

    async def list_uploads(self) -> list[UploadInfo]:
        return await run_io(self._list_sync)

    async def sweep_uploads(self, older_than: float, *, now: float | None = None) -> list[str]:
        deadline = (time.time() if now is None else now) - older_than
        removed = []
        for info in await self.list_uploads():
            lock = self._lock(info.upload_id)
            if info.updated_at >= deadline or lock.locked():
                continue
            async with lock:
                with contextlib.suppress(UploadNotFoundError):
                    current = await run_io(self._read_record, info.upload_id)
                    if current.updated_at < deadline:
                        self._hashes.pop(info.upload_id, None)
                        await run_io(self._remove_upload_sync, info.upload_id)
                        removed.append(info.upload_id)
        return removed
