"""`LocalBlobStore`: the default :class:`BlobStore`, a folder on the local file system.

Layout under ``root``::

    uploads/<upload_id>.data   the bytes received so far (may hold a torn tail after a crash)
    uploads/<upload_id>.json   the record: durable offset, created_at, updated_at
    blobs/<xx>/<key>           committed blobs; xx = first 2 hex digits of sha256(key)
    blobs/<xx>/<key>.sha256    the blob's digest, written before the blob appears
    tmp/                       temporary files (removed by recover())

Durability, what survives SIGKILL (and, given a file system that honours fsync, a power
loss):

* ``append`` writes the data, fsyncs it, *then* atomically replaces the record with the
  new offset (temp file + fsync + rename + directory fsync). The record therefore never
  counts a byte that is not on disk; bytes beyond it are a torn tail that every append
  and ``recover()`` truncate away. Long appends checkpoint every ``checkpoint_bytes``.
* An upload exists iff its record exists; ``create_upload`` writes the empty data file
  first, the record last.
* ``commit`` re-checks the length, verifies the SHA-256 (from the hash kept during the
  appends of this process, else by re-reading the file in 1 MiB chunks), writes the
  digest file, then renames the data file into ``blobs/`` (atomic: the blob is never half
  visible) and fsyncs both directories before removing the record. A crash before the
  rename leaves the upload intact; after it, ``recover()`` drops the stale record.
* ``delete`` unlinks the blob, then its digest file, then fsyncs the directory.

One process owns a root at a time; call ``await store.recover()`` at startup.
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
from pathlib import Path
from typing import Protocol

from .._exceptions import IntegrityError, UsageError
from ._base import (
    MAX_READ_CHUNK,
    BlobExistsError,
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    BlobStore,
    DigestMismatchError,
    OffsetMismatchError,
    UploadExistsError,
    UploadInfo,
    UploadNotFoundError,
    check_range,
    normalize_digest,
    validate_name,
)
from ._fsutil import LocalReader, atomic_write, fsync_dir, remove_tmp_files, run_io, write_all

__all__ = ["LocalBlobStore"]

_WRITE_SIZE = 1024 * 1024


class _Hasher(Protocol):
    def update(self, data: bytes | bytearray, /) -> None: ...
    def hexdigest(self) -> str: ...


class LocalBlobStore(BlobStore):
    """A :class:`BlobStore` in the folder *root* (created if missing); see the module doc."""

    def __init__(self, root: Path, *, checkpoint_bytes: int = 8 * 1024 * 1024) -> None:
        if checkpoint_bytes < 1:
            raise UsageError("checkpoint_bytes must be positive")
        self.root = Path(root)
        self._uploads = self.root / "uploads"
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        for directory in (self._uploads, self._blobs, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self._checkpoint = checkpoint_bytes
        self._locks: weakref.WeakValueDictionary[str, Lock] = weakref.WeakValueDictionary()
        # upload id -> (offset, hash of bytes [0, offset)) for appends made by this process
        self._hashes: dict[str, tuple[int, _Hasher]] = {}

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

    @staticmethod
    def _write(fd: int, data: bytearray, hasher: _Hasher | None) -> None:
        write_all(fd, data)
        if hasher is not None:
            hasher.update(data)

    def _make_durable(self, fd: int, info: UploadInfo, offset: int) -> UploadInfo:
        os.fsync(fd)
        new = UploadInfo(info.upload_id, offset, info.created_at, time.time())
        self._write_record(new)
        return new

    def _hash_file(self, upload_id: str, length: int) -> str:
        hasher = hashlib.sha256()
        with open(self._data_path(upload_id), "rb") as f:
            remaining = length
            while remaining:
                block = f.read(min(MAX_READ_CHUNK, remaining))
                if not block:
                    raise IntegrityError(f"upload {upload_id!r} is shorter than its offset")
                hasher.update(block)
                remaining -= len(block)
        return hasher.hexdigest()

    def _commit_sync(self, info: UploadInfo, key: str, digest: str) -> None:
        data, blob = self._data_path(info.upload_id), self._blob_path(key)
        if blob.exists():
            raise BlobExistsError(f"blob {key!r} already exists")
        fd = os.open(data, os.O_WRONLY)
        try:
            os.ftruncate(fd, info.offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not blob.parent.is_dir():
            blob.parent.mkdir(exist_ok=True)
            fsync_dir(self._blobs)
        sidecar = blob.with_name(f"{key}.sha256")
        atomic_write(sidecar, f"{digest}\n".encode(), tmp_dir=self._tmp, sync_dir=False)
        os.rename(data, blob)  # the commit point: the blob appears whole
        fsync_dir(blob.parent)
        fsync_dir(self._uploads)
        self._record_path(info.upload_id).unlink()
        fsync_dir(self._uploads)

    def _remove_upload_sync(self, upload_id: str) -> None:
        self._record_path(upload_id).unlink()  # the upload ceases to exist here
        with contextlib.suppress(FileNotFoundError):
            self._data_path(upload_id).unlink()
        fsync_dir(self._uploads)

    def _recover_sync(self) -> None:
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
            digest: str | None = blob.with_name(f"{key}.sha256").read_text().strip()
        except FileNotFoundError:
            digest = None
        return BlobInfo(key, size, digest)

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

    async def create_upload(self, upload_id: str) -> UploadInfo:
        validate_name(upload_id, "upload id")
        async with self._lock(upload_id):
            info = await run_io(self._create_sync, upload_id)
            self._hashes[upload_id] = (0, hashlib.sha256())
            return info

    async def upload_offset(self, upload_id: str) -> int:
        validate_name(upload_id, "upload id")
        return (await run_io(self._read_record, upload_id)).offset

    async def append(self, upload_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        validate_name(upload_id, "upload id")
        async with self._lock(upload_id):
            info = await run_io(self._read_record, upload_id)
            if offset != info.offset:
                raise OffsetMismatchError(
                    f"upload {upload_id!r} is at offset {info.offset}, not {offset}",
                    expected=info.offset,
                    actual=offset,
                )
            cached = self._hashes.pop(upload_id, None)
            hasher = cached[1] if cached is not None and cached[0] == offset else None
            fd = await run_io(self._open_at, upload_id, offset)
            try:
                info = await self._append_chunks(fd, info, chunks, hasher)
            finally:
                os.close(fd)
            if hasher is not None:
                self._hashes[upload_id] = (info.offset, hasher)
            return info.offset

    async def _append_chunks(
        self, fd: int, info: UploadInfo, chunks: AsyncIterator[bytes], hasher: _Hasher | None
    ) -> UploadInfo:
        position, buffer = info.offset, bytearray()
        in_io = False
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= _WRITE_SIZE:
                    in_io = True
                    await run_io(self._write, fd, buffer, hasher)
                    position, buffer = position + len(buffer), bytearray()
                    if position - info.offset >= self._checkpoint:
                        info = await run_io(self._make_durable, fd, info, position)
                    in_io = False
        except BaseException:
            if in_io:  # our own I/O failed: the record keeps the last durable offset
                raise
            # The client went away (or we were cancelled between chunks): make what
            # arrived durable so that the client can resume from there.
            if buffer:
                await run_io(self._write, fd, buffer, hasher)
                position += len(buffer)
            if position != info.offset:
                await run_io(self._make_durable, fd, info, position)
            raise
        if buffer:
            await run_io(self._write, fd, buffer, hasher)
            position += len(buffer)
        if position != info.offset:
            info = await run_io(self._make_durable, fd, info, position)
        return info

    async def commit(self, upload_id: str, key: str, *, expected_sha256: str) -> BlobInfo:
        validate_name(upload_id, "upload id")
        validate_name(key, "key")
        expected = normalize_digest(expected_sha256)
        async with self._lock(upload_id), self._lock(f"blob:{key}"):
            info = await run_io(self._read_record, upload_id)
            cached = self._hashes.get(upload_id)
            if cached is not None and cached[0] == info.offset:
                actual = cached[1].hexdigest()
            else:
                actual = await run_io(self._hash_file, upload_id, info.offset)
            if actual != expected:
                raise DigestMismatchError(
                    f"upload {upload_id!r} has SHA-256 {actual}, expected {expected}",
                    expected=expected,
                    actual=actual,
                )
            await run_io(self._commit_sync, info, key, actual)
            self._hashes.pop(upload_id, None)
            return BlobInfo(key, info.offset, actual)

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
