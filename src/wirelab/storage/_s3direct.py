"""``S3BlobStore.put`` of more than a part: a direct send, never resumed, so it keeps no
upload state: a multipart upload aborted on any failure, then the blob's pointer. (At
most a part is one object: :mod:`._s3files`.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ._base import BlobInfo
from ._hashing import verify_digest
from ._pipeline import Hasher
from ._s3bucket import Bucket
from ._s3client import call
from ._s3parts import take
from ._s3state import Layout, Pointer

__all__ = ["chain", "put_parts", "write_object"]


async def chain(head: bytearray, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """*head*, then the chunks of *rest*."""
    yield bytes(head)
    async for chunk in rest:
        yield chunk


async def put_parts(
    bucket: Bucket,
    layout: Layout,
    key: str,
    chunks: AsyncIterator[bytes],
    hasher: Hasher,
    algorithm: str,
    expected: str | None,
    part_size: int,
) -> BlobInfo:
    """Store *chunks* as blob *key*: a data object, verified, then its pointer written
    exclusively (:class:`PreconditionFailed` if taken; the data object is removed on
    any failure)."""
    data_key = layout.new_data(key)
    size = await write_object(bucket, data_key, chunks, hasher, part_size)
    actual = hasher.hexdigest()
    try:
        verify_digest("the body", algorithm, expected, actual)
        pointer = Pointer(data_key, size, actual, algorithm).to_json()
        await bucket.put(layout.pointer(key), pointer, "committing", exclusive=True, check=False)
    except BaseException:
        await bucket.delete(data_key, "removing a refused file")
        raise
    return BlobInfo(key, size, actual, algorithm)


async def write_object(
    bucket: Bucket, key: str, chunks: AsyncIterator[bytes], hasher: Hasher, part_size: int
) -> int:
    """Store *chunks* as the object *key*, hashing them; the size. Nothing is left
    behind on failure (but an object already written at *key*: the caller removes it)."""
    client, what = bucket.client, "storing a file"
    buffer = bytearray()
    parts: list[dict[str, object]] = []
    multipart_id: str | None = None

    async def upload(data: bytes) -> None:
        nonlocal multipart_id
        if multipart_id is None:
            response = await call(what, client.create_multipart_upload, Bucket=bucket.name, Key=key)
            multipart_id = str(response["UploadId"])

        def send() -> str:
            hasher.update(data)
            response = client.upload_part(
                Bucket=bucket.name,
                Key=key,
                UploadId=multipart_id,
                PartNumber=len(parts) + 1,
                Body=data,
            )
            return str(response["ETag"])

        etag = await call(what, send)
        parts.append({"PartNumber": len(parts) + 1, "ETag": etag})

    size = 0
    try:
        async for chunk in chunks:
            buffer += chunk
            size += len(chunk)
            while len(buffer) >= part_size:
                await upload(take(buffer, part_size))
        if multipart_id is None:
            tail = bytes(buffer)
            await call(what, hasher.update, tail)
            await bucket.put(key, tail, what)
            return size
        if buffer:
            await upload(bytes(buffer))
        await call(
            what,
            client.complete_multipart_upload,
            Bucket=bucket.name,
            Key=key,
            UploadId=multipart_id,
            MultipartUpload={"Parts": parts},
        )
        return size
    except BaseException:
        if multipart_id is not None:
            with contextlib.suppress(Exception):
                await bucket.abort_multipart(key, multipart_id, what)
        raise
