"""What is particular to :class:`S3BlobStore` (the shared contract is test_contract.py):
how uploads map to multipart uploads and staged objects, resuming from another instance,
cleaning up, and the storage URL. Runs against moto in server mode."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3

from wirelab import UsageError
from wirelab.storage import (
    BlobExistsError,
    DigestMismatchError,
    LocalBlobStore,
    S3BlobStore,
    UploadNotFoundError,
    _s3bucket,
    open_blob_store,
)
from wirelab.storage._s3 import MIN_PART_SIZE
from wirelab.storage._s3client import make_client
from wirelab.testing._s3server import S3Server

from .conftest import new_bucket

MIB = 1024 * 1024
PART = MIN_PART_SIZE
DATA = random.Random(7).randbytes(2 * PART + 3 * MIB + 11)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def pieces(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: S3BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with await store.open(key, start, end) as reader:
        return b"".join([part async for part in reader])


class Bucket:
    """A fresh bucket and a way to open store instances and look inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client: Any = make_client()

    def store(self) -> S3BlobStore:
        return S3BlobStore(self.name, "p/", part_size=PART)

    def multipart_uploads(self) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = self.client.list_multipart_uploads(Bucket=self.name).get(
            "Uploads", []
        )
        return uploads

    def keys(self, prefix: str = "") -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def bucket(moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Bucket:
    return Bucket(new_bucket(moto_s3, monkeypatch, tmp_path))


@pytest.mark.asyncio
async def test_small_appends_are_staged_without_a_multipart_upload(bucket: Bucket) -> None:
    store = bucket.store()
    await store.create_upload("u")
    offset = 0
    for i in range(20):  # 20 small PATCHes, each acknowledged durable
        offset = await store.append("u", offset, pieces(DATA[i * 10_000 : (i + 1) * 10_000]))
        assert await bucket.store().upload_offset("u") == offset  # seen by a new instance
    assert bucket.multipart_uploads() == []  # nothing reached a part yet
    staged = [k for k in bucket.keys("p/uploads/u/") if "staged-" in k]
    assert len(staged) == 1  # replaced staged objects are removed
    assert bucket.client.head_object(Bucket=bucket.name, Key=staged[0])["ContentLength"] == offset
    # crossing the part size starts the multipart upload with one full part
    offset = await store.append("u", offset, pieces(DATA[offset : PART + 5]))
    [upload] = bucket.multipart_uploads()
    parts = bucket.client.list_parts(
        Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"]
    )
    assert [p["Size"] for p in parts["Parts"]] == [PART]
    await store.commit("u", "k", expected_sha256=sha(DATA[:offset]))
    assert await read_all(bucket.store(), "k") == DATA[:offset]
    assert bucket.multipart_uploads() == []
    assert bucket.keys("p/uploads/") == []


@pytest.mark.asyncio
async def test_resume_on_another_instance_continues_the_same_multipart_upload(
    bucket: Bucket,
) -> None:
    first = bucket.store()
    await first.create_upload("u")
    cut = PART + 1234
    assert await first.append("u", 0, pieces(DATA[:cut])) == cut
    [before] = bucket.multipart_uploads()
    second = bucket.store()  # another process: no running hash, nothing in memory
    await second.recover()
    assert await second.upload_offset("u") == cut
    assert await second.append("u", cut, pieces(DATA[cut:])) == len(DATA)
    assert [u["UploadId"] for u in bucket.multipart_uploads()] == [before["UploadId"]]
    info = await second.commit("u", "k", expected_sha256=sha(DATA))  # digest read back
    assert (info.size, info.sha256) == (len(DATA), sha(DATA))
    assert await read_all(first, "k") == DATA
    assert await read_all(first, "k", PART - 3, PART + 3) == DATA[PART - 3 : PART + 3]


@pytest.mark.asyncio
async def test_digest_mismatch_read_back_leaves_the_upload_resumable(bucket: Bucket) -> None:
    first = bucket.store()
    await first.create_upload("u")
    cut = 2 * PART + 100
    await first.append("u", 0, pieces(DATA[:cut]))
    second = bucket.store()  # no running hash: commit must complete, read back, reopen
    with pytest.raises(DigestMismatchError) as info:
        await second.commit("u", "k", expected_sha256=sha(DATA))
    assert info.value.actual == sha(DATA[:cut])
    assert await second.upload_offset("u") == cut
    assert len(bucket.multipart_uploads()) == 1  # the parts, copied into a new upload
    assert bucket.keys("p/data/") == []  # the completed object is gone
    await bucket.store().append("u", cut, pieces(DATA[cut:]))
    await bucket.store().commit("u", "k", expected_sha256=sha(DATA))
    assert await read_all(first, "k") == DATA


@pytest.mark.asyncio
async def test_abort_and_sweep_abort_the_multipart_uploads(bucket: Bucket) -> None:
    store = bucket.store()
    for name in ("a", "b"):
        await store.create_upload(name)
        await store.append(name, 0, pieces(DATA[: PART + 10]))
    # an append that crashed after starting a multipart upload it never recorded
    await store.create_upload("c")
    state = await store._load("c")
    bucket.client.create_multipart_upload(Bucket=bucket.name, Key=state.data_key)
    assert len(bucket.multipart_uploads()) == 3
    await store.abort_upload("a")
    await store.abort_upload("c")
    assert [u["Key"].rsplit("/", 1)[1][:1] for u in bucket.multipart_uploads()] == ["b"]
    assert await bucket.store().sweep_uploads(-1.0) == ["b"]
    assert bucket.multipart_uploads() == []
    assert bucket.keys() == []
    with pytest.raises(UploadNotFoundError):
        await store.upload_offset("b")


@pytest.mark.asyncio
async def test_recover_leaves_other_processes_uploads_alone(bucket: Bucket) -> None:
    busy = bucket.store()
    await busy.create_upload("u")
    await busy.append("u", 0, pieces(DATA[: PART + 99]))
    keys = bucket.keys()
    await bucket.store().recover()  # a second server starting up
    assert bucket.keys() == keys
    assert len(bucket.multipart_uploads()) == 1
    assert await busy.append("u", PART + 99, pieces(DATA[PART + 99 :])) == len(DATA)
    await busy.commit("u", "k", expected_sha256=sha(DATA))  # running hash kept


@pytest.mark.asyncio
async def test_presigned_url_serves_the_blob_with_ranges(bucket: Bucket, tmp_path: Path) -> None:
    store = bucket.store()
    await store.put("k", pieces(DATA[:1000]), expected_sha256=sha(DATA[:1000]))
    url = await store.presigned_url("k", 60)
    assert url is not None
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == DATA[:1000]
        ranged = await client.get(url, headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, DATA[10:20])
    local = LocalBlobStore(tmp_path / "local")
    await local.put("k", pieces(b"x"), expected_sha256=None)
    assert await local.presigned_url("k", 60) is None  # the caller streams instead


def test_storage_url_selects_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_blob_store(None, "relay", tmp_path)
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / "relay"
    folder = open_blob_store(str(tmp_path / "elsewhere"), "media", tmp_path)
    assert isinstance(folder, LocalBlobStore)
    assert folder.root == tmp_path / "elsewhere" / "media"
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3 = open_blob_store("s3://bkt/some/prefix/", "relay", tmp_path)
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket.name, s3.layout.prefix) == ("bkt", "some/prefix/relay/")
    for bad in ("s3://", "http://x/y", "gs://b/p"):
        with pytest.raises(UsageError, match=r"bucket|unsupported"):
            open_blob_store(bad, "relay", tmp_path)


def test_large_transfers_do_not_hold_the_file_in_memory(bucket: Bucket) -> None:
    child = Path(__file__).with_name("s3_memory_child.py")

    def peak_kib(size: int) -> int:
        out = subprocess.run(
            [sys.executable, str(child), bucket.name, str(size)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return int(out.stdout.split()[-1])

    # both sizes use multipart uploads (a few part buffers); 64 MiB more data must not
    # show up in memory (measured: about +10 MiB, allocator noise and timing of parts)
    small, large = peak_kib(16 * MIB), peak_kib(80 * MIB)
    assert large - small < 32 * 1024, (small, large)


@pytest.mark.asyncio
async def test_a_failed_direct_put_leaves_nothing_in_the_bucket(bucket: Bucket) -> None:
    async def broken() -> AsyncIterator[bytes]:
        async for chunk in pieces(DATA[: PART + 10]):
            yield chunk
        raise ConnectionResetError("client went away")

    store = bucket.store()
    with pytest.raises(ConnectionResetError):
        await store.put("k", broken(), expected_sha256=None)
    with pytest.raises(DigestMismatchError):
        await store.put("k", pieces(DATA[: PART + 10]), expected_sha256=sha(b"x"))
    assert bucket.multipart_uploads() == []
    assert bucket.keys() == []


@pytest.mark.asyncio
async def test_a_direct_put_is_one_request_and_refuses_an_existing_blob(
    bucket: Bucket,
) -> None:
    """Every S3 request is a round trip and CPU: a small direct send of a new key is one
    PUT of its file and nothing else; a put that may reuse a key checks both forms of
    blob first (a HEAD each), so a second put of the key is refused and leaves the first
    blob and no stray object."""
    store = bucket.store()
    operations: list[str] = []
    store.bucket.watch(operations.append)
    await store.put("k", pieces(b"first"), expected_sha256=sha(b"first"), new_key=True)
    assert operations == ["PutObject"]
    keys = bucket.keys()
    assert keys == ["p/files/k"]
    operations.clear()
    with pytest.raises(BlobExistsError):
        await store.put("k", pieces(b"second"), expected_sha256=None)
    assert operations == ["HeadObject"]  # found as a file: the pointer is not looked for
    await store.put("j", pieces(b"other"), expected_sha256=None)
    assert operations == ["HeadObject", "HeadObject", "HeadObject", "PutObject"]
    assert bucket.keys() == ["p/files/j", "p/files/k"]
    assert await read_all(store, "k") == b"first"


@pytest.mark.asyncio
async def test_delete_many_is_one_request_for_the_files_and_leaves_no_object(
    bucket: Bucket,
) -> None:
    """Blobs deleted in a batch: one DeleteObjects for their files, one listing of the
    pointers (cheaper than a look-up per key), then the older form's pointer and data
    object of the one key that has it: nothing is left behind."""
    store = await _four_blobs(bucket)
    operations: list[str] = []
    store.bucket.watch(operations.append)
    await store.delete_many(["a", "b", "c", "d"])
    assert sorted(operations) == sorted(
        ["DeleteObjects", "ListObjectsV2", "GetObject", "DeleteObject", "DeleteObject"]
    )
    assert bucket.keys() == []


@pytest.mark.asyncio
async def test_delete_many_looks_each_key_up_when_the_listing_would_cost_more(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more pointers than a listing of len(keys) // 2 pages shows, the listing stops
    and every key is looked up, as one delete would: still nothing left behind."""
    monkeypatch.setattr(_s3bucket, "LIST_PAGE", 1)
    store = await _four_blobs(bucket)
    for extra in ("e", "f"):  # pointers that stay
        await _commit_upload(store, extra)
    operations: list[str] = []
    store.bucket.watch(operations.append)
    await store.delete_many(["a", "b", "c", "d"])  # 2 pages allowed, 3 pointers
    assert operations.count("ListObjectsV2") == 2
    assert operations.count("GetObject") == 4
    assert sorted(bucket.keys("p/blobs/")) == ["p/blobs/e", "p/blobs/f"]
    assert bucket.keys("p/files/") == []


async def _four_blobs(bucket: Bucket) -> S3BlobStore:
    """Files ``a``, ``b``, ``c`` (one object each) and ``d`` (a pointer and its data)."""
    store = bucket.store()
    for key in ("a", "b", "c"):
        await store.put(key, pieces(key.encode()), expected_sha256=None, new_key=True)
    await _commit_upload(store, "d")
    return store


async def _commit_upload(store: S3BlobStore, key: str) -> None:
    upload = await store.create_upload(f"up-{key}")
    await store.append(upload.upload_id, 0, pieces(DATA[:1000]))
    await store.commit(upload.upload_id, key, expected_sha256=sha(DATA[:1000]))


def test_serve_refuses_an_unsupported_storage_url(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wirelab.cli import main

    result = CliRunner().invoke(
        main, ["serve", "--data-dir", str(tmp_path), "--storage-url", "gs://bucket/x"]
    )
    assert result.exit_code != 0
    assert "unsupported storage URL 'gs://bucket/x'" in result.output


@pytest.mark.asyncio
async def test_an_upload_resumes_after_its_process_was_killed(bucket: Bucket) -> None:
    from .s3_crash_child import TOTAL, chunks, pattern

    child = Path(__file__).with_name("s3_crash_child.py")
    store = S3BlobStore(bucket.name, "crash/", part_size=PART)
    for target in (PART + 1, 3 * PART):  # killed twice, each time mid-append
        proc = await asyncio.create_subprocess_exec(sys.executable, str(child), bucket.name)
        try:
            deadline = time.monotonic() + 120
            while True:  # poll the durable offset another process writes
                with contextlib.suppress(UploadNotFoundError):
                    if await store.upload_offset("u") >= target:
                        break
                assert proc.returncode is None, "the child ended early"
                assert time.monotonic() < deadline, "the child made no progress"
                await asyncio.sleep(0.05)
        finally:
            proc.kill()
            await proc.wait()
    offset = await store.upload_offset("u")
    assert 3 * PART <= offset < TOTAL
    assert await store.append("u", offset, chunks(offset, TOTAL)) == TOTAL
    expected = hashlib.sha256(pattern(0, TOTAL)).hexdigest()
    info = await store.commit("u", "k", expected_sha256=expected)  # digest read back
    assert info.sha256 == expected
    assert await read_all(store, "k", offset - 10, offset + 10) == pattern(offset - 10, offset + 10)


@pytest.mark.asyncio
async def test_the_running_hash_survives_an_interrupted_append(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        async for chunk in pieces(DATA[: PART + 100]):
            yield chunk
        raise ConnectionResetError("client went away")

    async def no_read_back(*args: object) -> str:
        raise AssertionError("the digest was read back instead of kept")

    store = bucket.store()
    await store.create_upload("u")
    with pytest.raises(ConnectionResetError):
        await store.append("u", 0, broken())
    assert await store.upload_offset("u") == PART + 100
    await store.append("u", PART + 100, pieces(DATA[PART + 100 :]))
    monkeypatch.setattr(store.bucket, "hash_object", no_read_back)
    assert (await store.commit("u", "k", expected_sha256=sha(DATA))).sha256 == sha(DATA)


@pytest.mark.asyncio
async def test_an_upload_created_elsewhere_is_hashed_in_its_recorded_algorithm(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_read_back(*args: object) -> str:
        raise AssertionError("the digest was read back instead of kept")

    await bucket.store().create_upload("u", algorithm="blake3")  # another process
    store = bucket.store()  # learns the algorithm from the upload's state object
    await store.append("u", 0, pieces(DATA))
    monkeypatch.setattr(store.bucket, "hash_object", no_read_back)
    digest = blake3(DATA).hexdigest()
    info = await store.commit("u", "k", expected_sha256=digest, algorithm="blake3")
    assert (info.sha256, info.algorithm) == (digest, "blake3")
    assert (await bucket.store().stat("k")).algorithm == "blake3"
