"""``S3BlobStore.put``: a direct send, never resumed, so it keeps no upload state: one
PUT when the body fits in a part, else a multipart upload aborted on any failure."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ._pipeline import Hasher
from ._s3bucket import Bucket
from ._s3client import call
from ._s3parts import take

__all__ = ["write_object"]


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
