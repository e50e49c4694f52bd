"""Child process of test_s3.py's crash test: appends the pattern to upload ``u`` from its
durable offset until SIGKILLed. The ``AWS_*`` variables name the server; argv: BUCKET."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import AsyncIterator

from wirelab.storage import S3BlobStore, UploadExistsError

PATTERN = random.Random(99).randbytes(1_000_003)
TOTAL = 64 * 1024 * 1024


def pattern(start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the endless pattern."""
    out = bytearray()
    pos = start
    while pos < end:
        i = pos % len(PATTERN)
        piece = PATTERN[i : i + (end - pos)]
        out += piece
        pos += len(piece)
    return bytes(out)


async def chunks(start: int, end: int) -> AsyncIterator[bytes]:
    for pos in range(start, end, 65536):
        yield pattern(pos, min(pos + 65536, end))


async def main(bucket: str) -> None:
    store = S3BlobStore(bucket, "crash/", part_size=5 * 1024 * 1024)
    with contextlib.suppress(UploadExistsError):
        await store.create_upload("u")
    offset = await store.upload_offset("u")
    print("appending", flush=True)
    await store.append("u", offset, chunks(offset, TOTAL))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
