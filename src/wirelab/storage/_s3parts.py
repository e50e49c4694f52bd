"""One append to an S3 upload: bytes are collected into parts of ``part_size`` (S3 wants
at least 5 MiB for every part but the last), each part is uploaded and then recorded in
the upload's state object; what is left at the end (shorter than a part) is *staged*:
written as a new staged object, then recorded. The state object is always written last,
so it never counts a byte that is not stored, and an interrupted step only leaves an
unreferenced part (overwritten by the next upload of that part number) or staged object
(removed with the upload).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from ._pipeline import Hasher
from ._s3bucket import Bucket
from ._s3client import call
from ._s3state import Layout, Part, UploadState

__all__ = ["PartWriter", "copy_parts", "read_staged", "save_state", "take"]


def take(buffer: bytearray, size: int) -> bytes:
    """Remove the first *size* bytes of *buffer* and return them (one copy, not two)."""
    with memoryview(buffer) as view:
        data = bytes(view[:size])
    del buffer[:size]
    return data


async def save_state(bucket: Bucket, layout: Layout, state: UploadState) -> None:
    """Write *state* as the upload's state object (the durable record)."""
    await bucket.put(layout.state(state.upload_id), state.to_json(), "writing an upload's state")


async def read_staged(bucket: Bucket, state: UploadState) -> bytes:
    """The staged tail of *state* (at most one part)."""
    if state.staged_key is None or not state.staged_size:
        return b""
    data = await bucket.get(state.staged_key, "reading an upload's staged bytes")
    if data is None or len(data) < state.staged_size:
        from .._exceptions import IntegrityError

        raise IntegrityError(f"the staged bytes of upload {state.upload_id!r} are missing")
    return data[: state.staged_size]


async def copy_parts(
    bucket: Bucket, source_key: str, target_key: str, parts: Sequence[Part]
) -> tuple[str, tuple[Part, ...]]:
    """Put the bytes of *parts* (in order, from the start of the object *source_key*)
    into a new multipart upload of *target_key*; its id and parts.

    Server-side part copies where the store can; a store that answers a part copy
    without an ETag (``rclone serve s3`` then keeps an empty part it cannot replace)
    gets a fresh multipart upload with the bytes uploaded again.
    """
    copied = await _upload_parts(bucket, source_key, target_key, parts, server_side=True)
    if copied is None:
        copied = await _upload_parts(bucket, source_key, target_key, parts, server_side=False)
    assert copied is not None
    return copied


async def _upload_parts(
    bucket: Bucket, source_key: str, target_key: str, parts: Sequence[Part], *, server_side: bool
) -> tuple[str, tuple[Part, ...]] | None:
    """:func:`copy_parts` one way; ``None`` if a server-side copy gave no ETag."""
    what, client, name = "reopening an upload", bucket.client, bucket.name
    response = await call(what, client.create_multipart_upload, Bucket=name, Key=target_key)
    target: dict[str, Any] = {"Bucket": name, "Key": target_key, "UploadId": response["UploadId"]}
    done: list[Part] = []
    start = 0
    for part in parts:
        end = start + part.size
        if server_side:
            response = await call(
                what,
                client.upload_part_copy,
                PartNumber=part.number,
                CopySource={"Bucket": name, "Key": source_key},
                CopySourceRange=f"bytes={start}-{end - 1}",
                **target,
            )
            etag = response.get("CopyPartResult", {}).get("ETag")
            if etag is None:
                await bucket.abort_multipart(target_key, target["UploadId"], what)
                return None
        else:
            body = await call(what, bucket.read_range, source_key, start, end)
            response = await call(
                what, client.upload_part, PartNumber=part.number, Body=body, **target
            )
            etag = response["ETag"]
        done.append(Part(part.number, str(etag), part.size))
        start = end
    return str(target["UploadId"]), tuple(done)


class PartWriter:
    """Collects one append's bytes; see the module docstring.

    *hashers* see every new byte, in order, once (the staged bytes loaded at the start
    were seen by the appends that wrote them). With ``checkpoint`` the state is written
    after each part (the durable offset moves while a long append runs); without it
    (an append with a checksum) nothing is recorded until :meth:`finish`.
    """

    def __init__(
        self,
        bucket: Bucket,
        layout: Layout,
        state: UploadState,
        *,
        part_size: int,
        hashers: Sequence[Hasher],
        checkpoint: bool,
    ) -> None:
        self.bucket = bucket
        self.layout = layout
        self.durable = state  # what the state object says
        self._work = state  # parts uploaded by this append included
        self._part_size = part_size
        self._hashers = hashers
        self._checkpoint = checkpoint
        self._buffer = bytearray()
        self._unhashed = 0  # index in _buffer of the first byte the hashers have not seen
        self.received = state.offset
        # The part being uploaded while the next one is collected (at most one: parts are
        # uploaded, hashed and recorded in order, and memory stays at two parts).
        self._in_flight: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the staged tail: the next part begins with it."""
        self._buffer += await read_staged(self.bucket, self.durable)
        self._unhashed = len(self._buffer)

    async def add(self, chunk: bytes) -> None:
        """Take *chunk*; uploads a part (and checkpoints) each time one is full."""
        self._buffer += chunk
        self.received += len(chunk)
        while len(self._buffer) >= self._part_size:
            data = take(self._buffer, self._part_size)
            skip = self._unhashed
            self._unhashed = max(0, self._unhashed - self._part_size)
            await self.drain()
            self._in_flight = asyncio.ensure_future(self._upload_part(data, skip))

    async def drain(self) -> None:
        """Wait for the part in flight (its error, if any, is raised here)."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # we were cancelled: the upload still finishes (or fails) before we go on
                with contextlib.suppress(BaseException):
                    await task
                raise

    def _hash(self, data: bytes | bytearray, skip: int) -> None:
        if skip < len(data):
            view = memoryview(data)[skip:]
            for hasher in self._hashers:
                hasher.update(view)

    async def _upload_part(self, data: bytes, skip: int) -> None:
        work = self._work
        if work.multipart_id is None:
            response = await call(
                "starting a multipart upload",
                self.bucket.client.create_multipart_upload,
                Bucket=self.bucket.name,
                Key=work.data_key,
            )
            work = work.evolve(multipart_id=response["UploadId"])
        number = len(work.parts) + 1

        def upload() -> str:
            self._hash(data, skip)
            response = self.bucket.client.upload_part(
                Bucket=self.bucket.name,
                Key=work.data_key,
                UploadId=work.multipart_id,
                PartNumber=number,
                Body=data,
            )
            return str(response["ETag"])

        etag = await call("uploading a part", upload)
        parts = (*work.parts, Part(number, etag, len(data)))
        self._work = work.evolve(parts=parts, staged_key=None, staged_size=0)
        if self._checkpoint:
            await self._record(self._work)

    async def hash_rest(self) -> None:
        """Let the hashers see the bytes still in the buffer (before a checksum test)."""
        await self.drain()
        buffer, skip = self._buffer, self._unhashed
        self._unhashed = len(buffer)
        await call("hashing", self._hash, buffer, skip)

    async def finish(self) -> UploadState:
        """Stage the remaining bytes and record everything received; the new state."""
        await self.hash_rest()
        work = self._work
        if self._buffer:
            staged = self.layout.new_staged(work.upload_id)
            await self.bucket.put(staged, bytes(self._buffer), "staging an upload's bytes")
            work = work.evolve(staged_key=staged, staged_size=len(self._buffer))
        if work != self.durable:
            await self._record(work)
        return self.durable

    async def _record(self, state: UploadState) -> None:
        old_staged = self.durable.staged_key
        state = state.evolve(updated_at=time.time())
        await save_state(self.bucket, self.layout, state)
        self.durable = self._work = state
        if old_staged is not None and old_staged != state.staged_key:
            await self.bucket.delete(old_staged, "removing a replaced staged object")
