"""`S3BlobStore`: a :class:`BlobStore` in an S3-compatible bucket (``s3://bucket/prefix``).

Key layout: see :class:`wirelab.storage._s3state.Layout`. How the operations map:

* An upload is an S3 *multipart upload* of its data object, started with its first full
  part (``part_size``, at least 5 MiB). Its state object (multipart id, parts with their
  ETags, staged tail, durable offset) lives in the bucket, so a resumed upload continues
  the same multipart upload from any process, after any restart (:mod:`._s3parts`).
* Appends shorter than a part are *staged*: the tail is written as a staged object before
  the state that counts it, so every acknowledged byte is stored. The next append loads
  the tail back and sends it as the start of its next part.
* Digests: the algorithm chosen at ``create_upload`` is recorded in the state object,
  so whichever process appends keeps a running hash in it. ``commit`` verifies the
  digest in its ``algorithm`` (wirelab's, never the store's ETag): from the running
  hash this instance kept while it appended every byte (when it is in that algorithm),
  else by reading the completed object back. The blob's pointer records the algorithm,
  so ``stat`` reports it. It completes the multipart upload (the staged tail as the last part),
  then writes the blob's *pointer* ``blobs/<key>`` with ``If-None-Match: *``: the commit
  point, atomic, never overwriting. On a digest mismatch read back, the bytes are put
  into a new multipart upload by part copies (server-side where the store can), so the
  upload stays resumable.
* ``abort_upload`` and the expiry sweep abort the multipart uploads of the data key
  (including one started by an append that crashed before recording it) and remove
  the staged objects, then the state.
* ``recover`` changes nothing in the bucket: other processes may have uploads in flight.
  Leftovers of crashes (an unreferenced data object after a commit that failed between
  its two steps) are small and rare; a bucket lifecycle rule *AbortIncompleteMultipartUpload*
  is the recommended safety net.
* A direct send (``put``) of at most a part is one object, ``files/<key>``, its digest
  in its metadata (:mod:`._s3files`): one PUT, and one GET to read it, no pointer; a
  longer one is a multipart upload of a data object plus a pointer, as a commit writes.
* ``open`` streams one ranged GET in chunks; :meth:`S3BlobStore.presigned_url` hands out
  an expiring GET URL instead. ``open_upload`` is not offered: S3 cannot read the parts
  of an unfinished multipart upload (:class:`LiveReadUnsupportedError`).
* S3 has no disk-full: ``free_bytes`` is ``None`` and the reserve hooks do nothing.

Appends and commits of one upload are serialized within an instance; across processes
the caller serializes them (one tus request per upload at a time).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from asyncio import Lock
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._exceptions import UsageError
from ._base import (
    BlobExistsError,
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    BlobStore,
    LiveReadUnsupportedError,
    UploadExistsError,
    UploadInfo,
    UploadNotFoundError,
    check_offset,
    check_range,
    validate_name,
)
from ._hashing import (
    bulk_hasher,
    check_checksum,
    checksum_hasher,
    expected_digest,
    known_algorithm,
    verify_digest,
)
from ._pipeline import Hasher
from ._s3bucket import Bucket, PreconditionFailed
from ._s3client import S3Reader, call, is_missing, make_client, parse_s3_url
from ._s3direct import chain, put_parts
from ._s3files import file_digest, first_part, open_file, pointed_among, write_file
from ._s3parts import PartWriter, copy_parts, read_staged, save_state
from ._s3state import Layout, Pointer, UploadState

__all__ = ["MIN_PART_SIZE", "S3BlobStore"]

#: S3's smallest part (every part but the last).
MIN_PART_SIZE = 5 * 1024 * 1024


class S3BlobStore(BlobStore):
    """A :class:`BlobStore` under *prefix* in *bucket*; see the module docstring.

    *client* is a boto3 S3 client (default: one configured by boto's chain, see
    :func:`from_url`). ``part_size`` bounds the memory of one append (one part).
    *lean*: single-object requests through the lean client (:mod:`._s3lean`) where the
    configuration allows it; false: everything through botocore.
    """

    live_reads = False
    batch_deletes = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        part_size: int = 8 << 20,
        lean: bool = True,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise UsageError(f"part_size must be at least {MIN_PART_SIZE} (S3's minimum)")
        client = client if client is not None else make_client()
        self.bucket = Bucket(client, bucket, lean=lean)
        self.layout = Layout(prefix)
        self.part_size = part_size
        self._locks: weakref.WeakValueDictionary[str, Lock] = weakref.WeakValueDictionary()
        # upload id -> (offset, algorithm, hash of bytes [0, offset)) for appends made by
        # this instance (or from offset 0 by it)
        self._hashes: dict[str, tuple[int, str, Hasher]] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3BlobStore:
        """The store at ``s3://bucket/prefix``; *kwargs* as for the constructor."""
        location = parse_s3_url(url)
        return cls(location.bucket, location.prefix, **kwargs)

    def _lock(self, name: str) -> Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = Lock()
        return lock

    async def _load(self, upload_id: str) -> UploadState:
        raw = await self.bucket.get(self.layout.state(upload_id), "reading an upload's state")
        if raw is None:
            raise UploadNotFoundError(f"no upload {upload_id!r}")
        return UploadState.from_json(upload_id, raw)

    async def _pointer(self, key: str) -> Pointer:
        raw = await self.bucket.get(self.layout.pointer(key), "reading a blob's record")
        if raw is None:
            raise BlobNotFoundError(f"no blob {key!r}")
        return Pointer.from_json(key, raw)

    # -- uploads -----------------------------------------------------------------------

    async def recover(self) -> None:
        """Forget this instance's running hashes; nothing in the bucket is touched."""
        self._hashes.clear()

    async def create_upload(self, upload_id: str, *, algorithm: str = "sha256") -> UploadInfo:
        validate_name(upload_id, "upload id")
        known_algorithm(algorithm)
        async with self._lock(upload_id):
            now = time.time()
            data_key = self.layout.new_data(upload_id)
            state = UploadState(upload_id, data_key, now, now, algorithm=algorithm)
            key = self.layout.state(upload_id)
            try:
                await self.bucket.put(key, state.to_json(), "creating an upload", exclusive=True)
            except PreconditionFailed:
                raise UploadExistsError(f"upload {upload_id!r} already exists") from None
            self._hashes[upload_id] = (0, algorithm, bulk_hasher(algorithm))
            return UploadInfo(upload_id, 0, now, now)

    async def upload_offset(self, upload_id: str) -> int:
        validate_name(upload_id, "upload id")
        return (await self._load(upload_id)).offset

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
            state = await self._load(upload_id)
            check_offset(upload_id, state.offset, offset)
            # The running hash serves only while it covers exactly [0, durable offset); an
            # upload resumed at 0 (created by another process) starts one in its algorithm.
            cached = self._hashes.pop(upload_id, None)
            if cached is None and offset == 0:
                cached = (0, state.algorithm, bulk_hasher(state.algorithm))
            algorithm, hasher = state.algorithm, None
            if cached is not None and cached[0] == offset:
                _, algorithm, hasher = cached
            hashers = [h for h in (hasher, check) if h is not None]
            writer = PartWriter(
                self.bucket,
                self.layout,
                state,
                part_size=self.part_size,
                hashers=hashers,
                checkpoint=check is None,
            )
            await writer.start()
            try:
                await self._receive(writer, chunks, checksum, check)
            finally:  # kept, even when the client went away, if every byte it saw is stored
                if hasher is not None and writer.received == writer.durable.offset:
                    self._hashes[upload_id] = (writer.durable.offset, algorithm, hasher)
            return writer.durable.offset

    async def _receive(
        self,
        writer: PartWriter,
        chunks: AsyncIterator[bytes],
        checksum: tuple[str, bytes] | None,
        check: Hasher | None,
    ) -> None:
        """Feed *chunks* to *writer* and record them; what arrived before the client went
        away is recorded too (unless a checksum makes the append all or nothing)."""
        try:
            async for chunk in chunks:
                if chunk:
                    await writer.add(bytes(chunk))
        except BaseException:
            if check is None and writer.received > writer.durable.offset:
                await writer.finish()
            else:  # nothing to record: only let the part in flight end
                with contextlib.suppress(Exception):
                    await writer.drain()
            raise
        if checksum is not None and check is not None:
            await writer.hash_rest()
            check_checksum(check, checksum)
        await writer.finish()

    async def open_upload(self, upload_id: str, start: int, end: int) -> BlobReader:
        validate_name(upload_id, "upload id")
        await self._load(upload_id)
        raise LiveReadUnsupportedError(
            "live pass-through is not offered on S3 storage (S3 cannot read an unfinished "
            "multipart upload): the file is available once its upload completes"
        )

    async def commit(
        self, upload_id: str, key: str, *, expected_sha256: str | None, algorithm: str = "sha256"
    ) -> BlobInfo:
        validate_name(upload_id, "upload id")
        validate_name(key, "key")
        expected = expected_digest(expected_sha256, algorithm)
        what = f"upload {upload_id!r}"
        async with self._lock(upload_id), self._lock(f"blob:{key}"):
            state = await self._load(upload_id)
            cached = self._hashes.get(upload_id)
            usable = cached is not None and cached[:2] == (state.offset, algorithm)
            actual = cached[2].hexdigest() if cached is not None and usable else None
            if actual is not None:
                verify_digest(what, algorithm, expected, actual)
            if await self._exists(key):
                raise BlobExistsError(f"blob {key!r} already exists")
            await self._complete(state)
            if actual is None:
                actual = await self.bucket.hash_object(
                    state.data_key, state.offset, algorithm, "verifying an upload's digest"
                )
                if expected is not None and actual != expected:
                    await self._reopen(state)
                    verify_digest(what, algorithm, expected, actual)
            pointer = Pointer(state.data_key, state.offset, actual, algorithm)
            try:
                await self.bucket.put(
                    self.layout.pointer(key), pointer.to_json(), "committing", exclusive=True
                )
            except PreconditionFailed:  # another process committed this key meanwhile
                await self._reopen(state)
                raise BlobExistsError(f"blob {key!r} already exists") from None
            self._hashes.pop(upload_id, None)
            await self._remove_upload(state, completed=True)
            return BlobInfo(key, state.offset, actual, algorithm)

    async def _complete(self, state: UploadState) -> None:
        """Make the data object hold the upload's bytes (the multipart upload completed)."""
        what = "completing an upload"
        client, bucket = self.bucket.client, self.bucket.name
        tail = await read_staged(self.bucket, state)
        if state.multipart_id is None or not state.parts:
            await self.bucket.put(state.data_key, tail, what)
            return
        parts = [{"PartNumber": p.number, "ETag": p.etag} for p in state.parts]
        if tail:
            number = len(parts) + 1
            response = await call(
                what,
                client.upload_part,
                Bucket=bucket,
                Key=state.data_key,
                UploadId=state.multipart_id,
                PartNumber=number,
                Body=tail,
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
        try:
            await call(
                what,
                client.complete_multipart_upload,
                Bucket=bucket,
                Key=state.data_key,
                UploadId=state.multipart_id,
                MultipartUpload={"Parts": parts},
            )
        except Exception as exc:
            # Completed by an earlier commit that stopped before its pointer: reuse it.
            if not (is_missing(exc) and await self.bucket.exists(state.data_key, what)):
                raise

    async def _reopen(self, state: UploadState) -> None:
        """Undo :meth:`_complete`: copy the recorded parts of the completed data object
        into a new multipart upload (:func:`copy_parts`) and record it; the staged tail stays."""
        new = state.evolve(data_key=self.layout.new_data(state.upload_id), multipart_id=None)
        if state.parts:
            multipart_id, parts = await copy_parts(
                self.bucket, state.data_key, new.data_key, state.parts
            )
            new = new.evolve(multipart_id=multipart_id, parts=parts)
        await save_state(self.bucket, self.layout, new)
        await self.bucket.delete(state.data_key, "reopening an upload")

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        expected_sha256: str | None,
        algorithm: str = "sha256",
        new_key: bool = False,
    ) -> BlobInfo:
        """A direct send without upload state: at most a part is one object
        (:mod:`._s3files`); more is a multipart upload (:mod:`._s3direct`), then the
        pointer. A crash in between leaves at most an unreferenced object or upload.

        With *new_key* (the caller generated *key* and nothing can hold it) no request
        checks that the key is free; else a HEAD per form does, on top of the exclusive
        write (which servers such as ``rclone serve s3`` do not honour)."""
        validate_name(key, "key")
        expected = expected_digest(expected_sha256, algorithm)
        async with self._lock(f"blob:{key}"):
            if not new_key and await self._exists(key):
                raise BlobExistsError(f"blob {key!r} already exists")
            hasher = bulk_hasher(algorithm)
            head, ended = await first_part(chunks, self.part_size)
            if ended:
                try:
                    actual = await write_file(
                        self.bucket,
                        self.layout.file(key),
                        bytes(head),
                        hasher,
                        algorithm,
                        expected,
                        check=False,
                    )
                except PreconditionFailed:
                    raise BlobExistsError(f"blob {key!r} already exists") from None
                return BlobInfo(key, len(head), actual, algorithm)
            rest = chain(head, chunks)
            try:
                return await put_parts(
                    self.bucket,
                    self.layout,
                    key,
                    rest,
                    hasher,
                    algorithm,
                    expected,
                    self.part_size,
                )
            except PreconditionFailed:
                raise BlobExistsError(f"blob {key!r} already exists") from None

    async def _exists(self, key: str) -> bool:
        """Whether blob *key* exists in either form (two HEADs)."""
        what = "checking a blob"
        return await self.bucket.exists(self.layout.file(key), what) or await self.bucket.exists(
            self.layout.pointer(key), what
        )

    async def abort_upload(self, upload_id: str) -> None:
        validate_name(upload_id, "upload id")
        async with self._lock(upload_id):
            self._hashes.pop(upload_id, None)
            await self._remove_upload(await self._load(upload_id), completed=False)

    async def _remove_upload(self, state: UploadState, *, completed: bool) -> None:
        """Remove an upload: its multipart uploads (unless *completed*: their object is
        a blob's now), staged objects, and last its state (retrying stays possible)."""
        what = "removing an upload"
        if not completed:
            ids = set(await self.bucket.multipart_ids(state.data_key, what))
            ids.update([state.multipart_id] if state.multipart_id else [])
            for multipart_id in ids:
                await self.bucket.abort_multipart(state.data_key, multipart_id, what)
        state_key = self.layout.state(state.upload_id)
        if completed:  # the upload ceases to exist at once; leftovers are harmless
            await self.bucket.remove(state_key, what)
        for key in await self.bucket.keys(self.layout.upload_dir(state.upload_id), what):
            if key != state_key:
                await self.bucket.delete(key, what)
        if not completed:
            await self.bucket.remove(state_key, what)

    async def list_uploads(self) -> list[UploadInfo]:
        infos = []
        for key in await self.bucket.keys(self.layout.uploads(), "listing uploads"):
            upload_id = self.layout.upload_id_of_state(key)
            if upload_id is None:
                continue
            with contextlib.suppress(UploadNotFoundError):
                state = await self._load(upload_id)
                infos.append(
                    UploadInfo(upload_id, state.offset, state.created_at, state.updated_at)
                )
        return infos

    async def sweep_uploads(self, older_than: float, *, now: float | None = None) -> list[str]:
        deadline = (time.time() if now is None else now) - older_than
        removed = []
        for info in await self.list_uploads():
            lock = self._lock(info.upload_id)
            if info.updated_at >= deadline or lock.locked():
                continue
            async with lock:
                with contextlib.suppress(UploadNotFoundError):
                    state = await self._load(info.upload_id)
                    if state.updated_at < deadline:
                        self._hashes.pop(info.upload_id, None)
                        await self._remove_upload(state, completed=False)
                        removed.append(info.upload_id)
        return removed

    # -- blobs -------------------------------------------------------------------------

    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        validate_name(key, "key")
        reader = await open_file(self.bucket, self.layout.file(key), key, start, end)
        if reader is not None:
            return reader
        pointer = await self._pointer(key)
        first, stop = check_range(key, pointer.size, start, end)
        got = None
        if stop > first:
            got = await self.bucket.fetch(pointer.data_key, first, stop, "reading a blob")
            if got is None:  # deleted between the pointer and the GET
                raise BlobNotFoundError(f"no blob {key!r}")
        body = None if got is None else got.body
        return S3Reader(body, key=key, size=pointer.size, start=first, end=stop)

    async def stat(self, key: str) -> BlobInfo:
        validate_name(key, "key")
        found = await self.bucket.head(self.layout.file(key), "reading a blob")
        if found is not None:
            algorithm, digest = file_digest(key, found.meta)
            return BlobInfo(key, found.size, digest, algorithm)
        pointer = await self._pointer(key)
        return BlobInfo(key, pointer.size, pointer.sha256, pointer.algorithm)

    async def delete(self, key: str) -> None:
        """Remove the blob's file (a DELETE succeeds whether or not it exists), then,
        if the blob has the older form, its pointer and data object."""
        validate_name(key, "key")
        async with self._lock(f"blob:{key}"):
            await self.bucket.remove(self.layout.file(key), "deleting a blob")
            await self._delete_pointed(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        """As :meth:`delete` for each key, the files removed by DeleteObjects requests
        (up to 1,000 keys each); then the older form's look-ups (:func:`pointed_among`)."""
        for key in keys:
            validate_name(key, "key")
        await self.bucket.remove_many([self.layout.file(key) for key in keys], "deleting blobs")
        for key in await pointed_among(self.bucket, self.layout, keys):
            async with self._lock(f"blob:{key}"):
                await self._delete_pointed(key)

    async def _delete_pointed(self, key: str) -> None:
        """Remove the pointer of blob *key* and its data object, if it has the older form."""
        try:
            pointer = await self._pointer(key)
        except BlobNotFoundError:
            return
        await self.bucket.remove(self.layout.pointer(key), "deleting a blob")
        await self.bucket.delete(pointer.data_key, "deleting a blob's bytes")

    async def presigned_url(
        self,
        key: str,
        expires: float,
        *,
        disposition: str | None = None,
        media_type: str | None = None,
    ) -> str | None:
        """An expiring GET URL of the blob's bytes (signed locally: no request is sent
        but a HEAD of the blob's file, and the read of its pointer if it has none)."""
        validate_name(key, "key")
        data_key = self.layout.file(key)
        if not await self.bucket.exists(data_key, "reading a blob"):
            data_key = (await self._pointer(key)).data_key
        params = {"Bucket": self.bucket.name, "Key": data_key}
        if disposition is not None:
            params["ResponseContentDisposition"] = disposition
        if media_type is not None:
            params["ResponseContentType"] = media_type
        url: str = await call(
            "signing a URL",
            self.bucket.client.generate_presigned_url,
            "get_object",
            Params=params,
            ExpiresIn=max(1, int(expires)),
        )
        return url
