"""The S3 store against ``rclone serve s3``, which (unlike moto) checks request
signatures and the expiry of presigned URLs."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from wirelab import UsageError
from wirelab.storage import S3BlobStore, StorageAccessError
from wirelab.storage._s3 import MIN_PART_SIZE
from wirelab.testing._s3server import S3Server

from .conftest import new_bucket

DATA = random.Random(5).randbytes(MIN_PART_SIZE + 12345)


async def pieces(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def bucket(rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    return new_bucket(rclone_s3, monkeypatch, tmp_path)


@pytest.mark.asyncio
async def test_signed_round_trip_through_a_multipart_upload(bucket: str) -> None:
    store = S3BlobStore(bucket, "p/", part_size=MIN_PART_SIZE)
    await store.create_upload("u")
    cut = MIN_PART_SIZE + 1
    await store.append("u", 0, pieces(DATA[:cut]))
    other = S3BlobStore(bucket, "p/", part_size=MIN_PART_SIZE)
    await other.append("u", cut, pieces(DATA[cut:]))
    digest = hashlib.sha256(DATA).hexdigest()
    assert (await other.commit("u", "k", expected_sha256=digest)).sha256 == digest
    async with await store.open("k", 100, 200) as reader:
        assert b"".join([part async for part in reader]) == DATA[100:200]


@pytest.mark.asyncio
async def test_presigned_url_works_until_it_expires(bucket: str) -> None:
    store = S3BlobStore(bucket, "p/")
    await store.put("k", pieces(DATA[:5000]), expected_sha256=None)
    # 2 s: the signature's time has whole seconds, so the URL lives at least 1 s
    url = await store.presigned_url("k", 2)
    assert url is not None
    signed_at = time.monotonic()
    async with httpx.AsyncClient() as client:
        fresh = await client.get(url, headers={"Range": "bytes=0-99"})
        assert time.monotonic() - signed_at < 1, "the machine was too slow to test expiry"
        assert fresh.status_code in (200, 206)  # rclone answers ranges with a 200
        assert fresh.content == DATA[:100]
        deadline = time.monotonic() + 30
        while (late := await client.get(url)).status_code in (200, 206):
            assert time.monotonic() < deadline, "the URL never expired"
            await asyncio.sleep(0.2)  # expiry is wall-clock: there is no event to await
        assert late.status_code in (400, 403), late.text
        assert "AccessDenied" in late.text, late.text
        assert time.monotonic() - signed_at >= 1
        # refused for its age only: a URL signed for an hour still works
        long_lived = await store.presigned_url("k", 3600)
        assert long_lived is not None
        assert (await client.get(long_lived)).content == DATA[:5000]


@pytest.mark.asyncio
async def test_wrong_credentials_are_a_clear_error(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    store = S3BlobStore(bucket, "p/")
    with pytest.raises(StorageAccessError, match="S3 refused creating an upload") as info:
        await store.create_upload("u")
    assert isinstance(info.value, UsageError)
    assert "403" in str(info.value)  # a HEAD: the answer has no body
    assert "check the credentials (AWS_ACCESS_KEY_ID" in str(info.value)
    with pytest.raises(StorageAccessError, match="S3 refused reading a blob") as info:
        await store.open("k")  # a GET: the answer names the error
    assert "SignatureDoesNotMatch" in str(info.value)
