"""Child process of test_crash.py: uploads and commits blobs until it is SIGKILLed.

Usage: ``python crash_child.py ROOT``. Upload ``u<i>`` holds ``expected(i, size(i))`` and
is committed as blob ``b<i>``; every run resumes from the durable state on disk. The
data is derived from the position, so the parent can check every byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from wirelab.storage import BlobNotFoundError, LocalBlobStore, UploadNotFoundError

PATTERN = random.Random(20240601).randbytes(1_000_003)
BLOBS = 24


def size(i: int) -> int:
    return 1_500_000 + 211_111 * i


def expected(i: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of upload *i*: the pattern, shifted per upload."""
    out = bytearray()
    pos = start
    while pos < end:
        j = (pos + 7919 * i) % len(PATTERN)
        take = min(end - pos, len(PATTERN) - j)
        out += PATTERN[j : j + take]
        pos += take
    return bytes(out)


async def pieces(i: int, start: int, end: int, rng: random.Random) -> AsyncIterator[bytes]:
    pos = start
    while pos < end:
        step = min(end - pos, rng.randint(1, 300_000))
        yield expected(i, pos, pos + step)
        pos += step
        await asyncio.sleep(0)


async def main(root: Path) -> None:
    rng = random.Random()
    store = LocalBlobStore(root, checkpoint_bytes=rng.randint(100_000, 2_000_000))
    await store.recover()
    print("ready", flush=True)
    for i in range(BLOBS):
        try:
            await store.stat(f"b{i}")
            continue
        except BlobNotFoundError:
            pass
        upload_id = f"u{i}"
        try:
            offset = await store.upload_offset(upload_id)
        except UploadNotFoundError:
            await store.create_upload(upload_id)
            offset = 0
        while offset < size(i):
            end = min(size(i), offset + rng.randint(1, 1_000_000))
            # half of the appends are all-or-nothing (a tus Upload-Checksum)
            checksum = None
            if rng.random() < 0.5:
                checksum = ("sha1", hashlib.sha1(expected(i, offset, end)).digest())
            chunks = pieces(i, offset, end, rng)
            offset = await store.append(upload_id, offset, chunks, checksum=checksum)
        digest = hashlib.sha256(expected(i, 0, size(i))).hexdigest()
        await store.commit(upload_id, f"b{i}", expected_sha256=digest)
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
