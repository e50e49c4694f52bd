"""The lean S3 client (single-object requests signed directly, :mod:`wirelab.storage._s3lean`)
against ``rclone serve s3``, which checks signatures and signed payloads: requests per
relayed file, error mapping identical to the botocore path, streaming reads, the fall-back
to botocore, and blobs written by earlier versions (data object + pointer)."""

from __future__ import annotations

import hashlib
import random
import socket
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from wirelab.storage import BlobNotFoundError, S3BlobStore, StorageAccessError
from wirelab.storage._s3 import MIN_PART_SIZE
from wirelab.storage._s3client import make_client
from wirelab.storage._s3lean import lean_client
from wirelab.testing._s3server import S3Server

from .conftest import new_bucket
from .test_s3 import pieces, read_all, sha

DATA = random.Random(7).randbytes(300_000)


@pytest.fixture
def bucket(rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "WIRELAB_S3_LEAN"):
        monkeypatch.delenv(name, raising=False)
    return new_bucket(rclone_s3, monkeypatch, tmp_path)


@pytest.mark.asyncio
async def test_a_relayed_file_costs_three_signed_requests(bucket: str) -> None:
    """send: one PUT; download: one GET; acknowledge: the DELETE and the look-up of the
    older form's pointer. rclone checks every signature (and the signed payload)."""
    store = S3BlobStore(bucket, "p/")
    assert store.bucket.lean is not None
    operations: list[str] = []
    store.bucket.watch(operations.append)
    info = await store.put("f1", pieces(DATA), expected_sha256=sha(DATA), new_key=True)
    assert (info.size, info.sha256) == (len(DATA), sha(DATA))
    assert operations == ["PutObject"]
    assert await read_all(store, "f1") == DATA
    assert await read_all(store, "f1", 1000, 250_000) == DATA[1000:250_000]
    assert operations[1:] == ["GetObject", "GetObject"]
    assert (await store.stat("f1")).sha256 == sha(DATA)
    del operations[:]
    await store.delete("f1")
    assert operations == ["DeleteObject", "GetObject"]
    with pytest.raises(BlobNotFoundError):
        await store.open("f1")


def test_signed_payloads_and_escaped_keys_are_accepted(bucket: str) -> None:
    """Over http the body's SHA-256 is signed (the caller's digest when it has one, else
    computed); rclone checks the signature (not the body against the hash, which S3
    does). Keys with characters that need escaping are signed as S3 canonicalizes them."""
    lean = lean_client(make_client(), bucket)
    assert lean is not None and lean.target.scheme == "http"
    lean.request("PUT", "k", body=b"original", payload_sha256=sha(b"original"))
    lean.request("PUT", "j", body=b"hashed here")
    odd = "dir/a b+c=d~e%f(ü).txt"
    lean.request("PUT", odd, body=b"odd")
    assert lean.request("GET", odd).data == b"odd"
    assert make_client().get_object(Bucket=bucket, Key=odd)["Body"].read() == b"odd"


async def _failure(store: S3BlobStore, action: str) -> str:
    with pytest.raises(StorageAccessError) as info:
        if action == "put":
            await store.put("k", pieces(b"x"), expected_sha256=None, new_key=True)
        elif action == "open":
            await store.open("k")
        else:
            await store.stat("k")
    return str(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["put", "open", "stat"])
async def test_errors_are_mapped_exactly_as_on_the_botocore_path(
    bucket: str, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    lean, boto = S3BlobStore(bucket, "p/"), S3BlobStore(bucket, "p/", lean=False)
    assert lean.bucket.lean is not None and boto.bucket.lean is None
    message = await _failure(lean, action)
    assert message == await _failure(boto, action)
    assert "check the credentials" in message
    assert ("403" if action == "stat" else "SignatureDoesNotMatch") in message
    monkeypatch.undo()


@pytest.mark.asyncio
async def test_a_missing_bucket_and_an_unreachable_server_are_access_errors(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = [S3BlobStore(f"{bucket}-none", "p/", lean=lean) for lean in (True, False)]
    messages = [await _failure(store, "open") for store in missing]
    assert messages[0] == messages[1]
    assert "NoSuchBucket" in messages[0] and "check the bucket name" in messages[0]
    with socket.socket() as sock:  # a port that nothing listens on (just closed)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    for lean in (True, False):
        store = S3BlobStore(bucket, "p/", lean=lean)
        assert (store.bucket.lean is not None) == lean
        assert (await _failure(store, "open")).startswith("S3 failed reading a blob: ")


@pytest.mark.asyncio
async def test_reads_stream_in_chunks(bucket: str) -> None:
    """A GET is read a chunk at a time: reading a blob four times the chunk size never
    holds much more than a chunk."""
    data = random.Random(3).randbytes(MIN_PART_SIZE - 1)  # one object: the file form
    store = S3BlobStore(bucket, "p/", part_size=MIN_PART_SIZE)
    await store.put("big", pieces(data), expected_sha256=None, new_key=True)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        async with await store.open("big") as reader:
            async for part in reader:
                assert len(part) <= 1 << 20
                digest.update(part)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == sha(data)
    assert peak < 3 << 20, peak


@pytest.mark.parametrize(
    "setting",
    [
        {"env": {"HTTP_PROXY": "http://127.0.0.1:9"}},
        {"env": {"WIRELAB_S3_LEAN": "0"}},
        {"client": {"config_s3": {"use_accelerate_endpoint": True}}},
        {"client": {"proxies": {"http": "http://127.0.0.1:9"}}},
    ],
    ids=["proxy-env", "disabled", "accelerate", "proxy-config"],
)
def test_configurations_it_does_not_handle_fall_back_to_botocore(
    bucket: str, monkeypatch: pytest.MonkeyPatch, setting: dict[str, Any]
) -> None:
    from botocore.config import Config

    assert lean_client(make_client(), bucket) is not None
    for name, value in setting.get("env", {}).items():
        monkeypatch.setenv(name, value)
    options = setting.get("client", {})
    client = make_client()
    if options:
        import boto3

        config = Config(s3=options.get("config_s3"), proxies=options.get("proxies"))
        client = boto3.session.Session().client("s3", config=config)
    assert lean_client(client, bucket) is None


def test_a_proxy_that_the_endpoint_bypasses_keeps_the_lean_client(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert lean_client(make_client(), bucket) is not None


@pytest.mark.asyncio
async def test_both_paths_read_what_the_other_wrote(bucket: str) -> None:
    lean, boto = S3BlobStore(bucket, "p/"), S3BlobStore(bucket, "p/", lean=False)
    await lean.put("a", pieces(DATA), expected_sha256=None, algorithm="blake3", new_key=True)
    await boto.put("b", pieces(DATA[:99]), expected_sha256=sha(DATA[:99]), new_key=True)
    assert await read_all(boto, "a", 5, 17) == DATA[5:17]
    assert (await boto.stat("a")).algorithm == "blake3"
    assert await read_all(lean, "b") == DATA[:99]
    assert (await lean.stat("b")).sha256 == sha(DATA[:99])
    assert await read_all(lean, "b", 99) == b""  # at the end: the HEAD answers
    for deleting, reading, key in ((boto, lean, "a"), (lean, boto, "b")):
        await deleting.delete(key)
        with pytest.raises(BlobNotFoundError):
            await reading.stat(key)


@pytest.mark.asyncio
async def test_blobs_in_the_older_form_are_still_read_and_deleted(bucket: str) -> None:
    """Earlier versions stored a direct send as ``data/<key>-<rand>`` plus a pointer
    ``blobs/<key>``: such blobs open, stat, presign and delete as before."""
    client = make_client()
    client.put_object(Bucket=bucket, Key="p/data/old-0123abcd", Body=DATA)
    pointer = f'{{"data": "p/data/old-0123abcd", "size": {len(DATA)}, "sha256": "{sha(DATA)}"}}'
    client.put_object(Bucket=bucket, Key="p/blobs/old", Body=pointer.encode())
    store = S3BlobStore(bucket, "p/")
    info = await store.stat("old")
    assert (info.size, info.sha256, info.algorithm) == (len(DATA), sha(DATA), "sha256")
    assert await read_all(store, "old") == DATA
    assert await read_all(store, "old", 10, 20) == DATA[10:20]
    url = await store.presigned_url("old", 60)
    assert url is not None
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).content == DATA
    await store.delete("old")
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    with pytest.raises(BlobNotFoundError):
        await store.open("old")
