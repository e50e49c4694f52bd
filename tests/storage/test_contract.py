"""The BlobStore contract: runs against every implementation of the ``store`` fixture."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirelab import IntegrityError, UsageError
from wirelab._digests import DIGEST_ALGORITHMS, new_hasher
from wirelab.storage import (
    MAX_READ_CHUNK,
    BlobExistsError,
    BlobNotFoundError,
    BlobStore,
    DigestMismatchError,
    InvalidNameError,
    InvalidRangeError,
    LiveReadUnsupportedError,
    OffsetMismatchError,
    UploadExistsError,
    UploadNotFoundError,
)

MiB = 1024 * 1024
_ids = itertools.count()


def fresh_id(prefix: str = "u") -> str:
    return f"{prefix}{next(_ids)}"


async def chunked(data: bytes, sizes: Sequence[int] = (65536,)) -> AsyncIterator[bytes]:
    """Yield *data* in chunks whose sizes cycle through *sizes*."""
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            return
        yield data[pos : pos + size]
        pos += size


async def read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    parts = []
    async with await store.open(key, start, end) as reader:
        async for part in reader:
            assert 0 < len(part) <= MAX_READ_CHUNK
            parts.append(part)
    return b"".join(parts)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def put(store: BlobStore, key: str, data: bytes) -> None:
    upload_id = fresh_id()
    await store.create_upload(upload_id)
    assert await store.append(upload_id, 0, chunked(data)) == len(data)
    await store.commit(upload_id, key, expected_sha256=sha(data))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    size=st.one_of(st.sampled_from([0, 1, MiB - 1, MiB, MiB + 1]), st.integers(0, 3 * MiB)),
    seed=st.integers(0, 2**32),
    pieces=st.lists(st.integers(1, 700_000), min_size=1, max_size=4),
    splits=st.integers(1, 3),
)
def test_round_trip_any_size(
    store: BlobStore, size: int, seed: int, pieces: list[int], splits: int
) -> None:
    data = random.Random(seed).randbytes(size)

    async def body() -> None:
        upload_id, key = fresh_id(), fresh_id("k")
        await store.create_upload(upload_id)
        offset = 0
        for i in range(splits):  # several appends, like resumed PATCH requests
            part = data[offset : size * (i + 1) // splits]
            offset = await store.append(upload_id, offset, chunked(part, pieces))
        assert offset == size == await store.upload_offset(upload_id)
        info = await store.commit(upload_id, key, expected_sha256=sha(data))
        assert (info.size, info.sha256) == (size, sha(data))
        assert await read_all(store, key) == data
        stat = await store.stat(key)
        assert stat.size == size
        assert stat.sha256 in (None, sha(data))
        with pytest.raises(UploadNotFoundError):
            await store.upload_offset(upload_id)

    asyncio.run(body())


@pytest.mark.asyncio
async def test_multi_mib_blob_is_streamed_in_bounded_chunks(store: BlobStore) -> None:
    data = random.Random(1).randbytes(5 * MiB + 3)
    await put(store, "big", data)
    async with await store.open("big") as reader:
        assert reader.length == len(data)
        sizes = [len(part) async for part in reader]
    assert sum(sizes) == len(data)
    assert max(sizes) <= MAX_READ_CHUNK


@pytest.mark.asyncio
async def test_wrong_offset_is_refused_and_writes_nothing(store: BlobStore) -> None:
    await store.create_upload("u")
    await store.append("u", 0, chunked(b"hello"))
    for bad in (0, 4, 6, 100):
        with pytest.raises(OffsetMismatchError) as info:
            await store.append("u", bad, chunked(b"XXX"))
        assert (info.value.expected, info.value.actual) == (5, bad)
    assert await store.upload_offset("u") == 5
    await store.append("u", 5, chunked(b" world"))
    await store.commit("u", "k", expected_sha256=sha(b"hello world"))
    assert await read_all(store, "k") == b"hello world"


@pytest.mark.asyncio
@pytest.mark.parametrize("algorithm", DIGEST_ALGORITHMS)
async def test_resume_on_a_new_instance(
    store_factory: Callable[[], BlobStore], algorithm: str
) -> None:
    data = random.Random(2).randbytes(6 * MiB)  # the resumed append crosses 5 MiB
    digest = new_hasher(algorithm)
    digest.update(data)
    first = store_factory()
    await first.recover()
    await first.create_upload("u", algorithm=algorithm)
    await first.append("u", 0, chunked(data[: MiB + 17]))
    second = store_factory()  # a restart (or another process): no state in memory
    await second.recover()
    offset = await second.upload_offset("u")
    assert offset == MiB + 17
    assert await second.append("u", offset, chunked(data[offset:])) == len(data)
    with pytest.raises(DigestMismatchError) as caught:  # verified in the upload's algorithm
        await second.commit("u", "k", expected_sha256="0" * 64, algorithm=algorithm)
    assert (caught.value.algorithm, caught.value.actual) == (algorithm, digest.hexdigest())
    info = await second.commit("u", "k", expected_sha256=digest.hexdigest(), algorithm=algorithm)
    assert (info.size, info.sha256, info.algorithm) == (len(data), digest.hexdigest(), algorithm)
    third = store_factory()
    stat = await third.stat("k")
    assert (stat.size, stat.sha256, stat.algorithm) == (len(data), digest.hexdigest(), algorithm)
    assert await read_all(third, "k") == data


@pytest.mark.asyncio
async def test_interrupted_append_keeps_what_arrived(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 2000
        raise ConnectionResetError("client went away")

    await store.create_upload("u")
    with pytest.raises(ConnectionResetError):
        await store.append("u", 0, broken())
    assert await store.upload_offset("u") == 3000
    await store.append("u", 3000, chunked(b"c"))
    await store.commit("u", "k", expected_sha256=sha(b"a" * 1000 + b"b" * 2000 + b"c"))


@pytest.mark.asyncio
async def test_digest_mismatch_leaves_upload_intact(store: BlobStore) -> None:
    await store.create_upload("u")
    await store.append("u", 0, chunked(b"payload"))
    with pytest.raises(DigestMismatchError) as info:
        await store.commit("u", "k", expected_sha256=sha(b"other"))
    assert isinstance(info.value, IntegrityError)
    assert info.value.actual == sha(b"payload")
    with pytest.raises(BlobNotFoundError):
        await store.stat("k")
    assert await store.upload_offset("u") == 7
    await store.commit("u", "k", expected_sha256=sha(b"payload").upper())
    assert await read_all(store, "k") == b"payload"


@pytest.mark.asyncio
async def test_commit_never_overwrites_a_blob(store: BlobStore) -> None:
    await put(store, "k", b"first")
    await store.create_upload("u")
    await store.append("u", 0, chunked(b"second"))
    with pytest.raises(BlobExistsError):
        await store.commit("u", "k", expected_sha256=sha(b"second"))
    assert await read_all(store, "k") == b"first"
    assert await store.upload_offset("u") == 6


@pytest.mark.asyncio
async def test_range_reads_at_the_edges(store: BlobStore) -> None:
    data = random.Random(3).randbytes(2 * MiB + 5)
    await put(store, "k", data)
    n = len(data)
    cases = [(0, None), (0, 0), (0, 1), (n - 1, None), (n, None), (n, n), (MiB - 1, MiB + 1)]
    cases += [(MiB, 2 * MiB), (1, n - 1), (17, 17)]
    for start, end in cases:
        assert await read_all(store, "k", start, end) == data[start:end], (start, end)
    for start, end in [(-1, None), (n + 1, None), (0, n + 1), (5, 4)]:
        with pytest.raises(InvalidRangeError):
            await store.open("k", start, end)


@pytest.mark.asyncio
async def test_empty_blob(store: BlobStore) -> None:
    await put(store, "empty", b"")
    assert (await store.stat("empty")).size == 0
    assert await read_all(store, "empty") == b""
    with pytest.raises(InvalidRangeError):
        await store.open("empty", 1)


BAD_NAMES = ["", ".", "..", "../x", "a/b", "a\\b", "/etc", "x" * 129, "a.b", "é", "a b", "a\0"]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_names_are_refused(store: BlobStore, name: str) -> None:
    calls = [
        store.create_upload(name),
        store.append(name, 0, chunked(b"x")),
        store.upload_offset(name),
        store.commit(name, "k", expected_sha256=sha(b"")),
        store.commit("u", name, expected_sha256=sha(b"")),
        store.abort_upload(name),
        store.open(name),
        store.stat(name),
        store.delete(name),
    ]
    for call in calls:
        with pytest.raises(InvalidNameError):
            await call
    assert await store.list_uploads() == []


@pytest.mark.asyncio
async def test_longest_name_is_accepted(store: BlobStore) -> None:
    name = "A-z_9" * 25 + "abc"
    assert len(name) == 128
    await store.create_upload(name)
    await store.append(name, 0, chunked(b"x"))
    await store.commit(name, name, expected_sha256=sha(b"x"))
    assert await read_all(store, name) == b"x"


@pytest.mark.asyncio
async def test_invalid_digest_is_a_usage_error(store: BlobStore) -> None:
    await store.create_upload("u")
    with pytest.raises(UsageError):
        await store.commit("u", "k", expected_sha256="abc")


@pytest.mark.asyncio
async def test_unknown_upload_and_duplicate_create(store: BlobStore) -> None:
    with pytest.raises(UploadNotFoundError):
        await store.upload_offset("nope")
    with pytest.raises(UploadNotFoundError):
        await store.append("nope", 0, chunked(b"x"))
    with pytest.raises(UploadNotFoundError):
        await store.abort_upload("nope")
    with pytest.raises(UploadNotFoundError):
        await store.commit("nope", "k", expected_sha256=sha(b""))
    await store.create_upload("u")
    with pytest.raises(UploadExistsError):
        await store.create_upload("u")


@pytest.mark.asyncio
async def test_delete_is_idempotent_and_readers_keep_their_snapshot(store: BlobStore) -> None:
    data = random.Random(4).randbytes(3 * MiB)
    await put(store, "k", data)
    reader = await store.open("k")
    await store.delete("k")
    await store.delete("k")
    await store.delete("never-existed")
    with pytest.raises(BlobNotFoundError):
        await store.stat("k")
    with pytest.raises(BlobNotFoundError):
        await store.open("k")
    async with reader:
        assert b"".join([part async for part in reader]) == data
    await put(store, "k", b"again")  # a deleted key can be used again
    assert await read_all(store, "k") == b"again"


@pytest.mark.asyncio
async def test_delete_many_removes_blobs_of_every_form_and_nothing_else(
    store: BlobStore,
) -> None:
    """Committed from an upload, put directly (small and of several parts), absent: all
    removed in one call, the others kept; calling again (after a partial failure, say)
    is safe."""
    blobs = {key: random.Random(key).randbytes(size) for key, size in
             [("up", 3000), ("small", 1000), ("big", 5 * MiB + 7), ("keep", 10)]}  # fmt: skip
    await put(store, "up", blobs["up"])
    for key in ("small", "big", "keep"):
        await store.put(key, chunked(blobs[key]), expected_sha256=sha(blobs[key]))
    await store.delete_many(["up", "small", "big", "never-existed"])
    for key in ("up", "small", "big"):
        with pytest.raises(BlobNotFoundError):
            await store.stat(key)
    await store.delete_many(["up", "small"])
    await store.delete_many([])
    assert await read_all(store, "keep") == blobs["keep"]
    with pytest.raises(InvalidNameError):
        await store.delete_many(["ok", "../bad"])
    await put(store, "up", b"again")  # a deleted key can be used again
    assert await read_all(store, "up") == b"again"


@pytest.mark.asyncio
async def test_abort_and_list_uploads(store: BlobStore) -> None:
    await store.create_upload("a")
    await store.create_upload("b")
    await store.append("b", 0, chunked(b"12345"))
    listed = {info.upload_id: info for info in await store.list_uploads()}
    assert set(listed) == {"a", "b"}
    assert listed["b"].offset == 5
    assert listed["b"].updated_at >= listed["b"].created_at
    await store.abort_upload("a")
    assert [info.upload_id for info in await store.list_uploads()] == ["b"]
    await store.create_upload("a")  # the id is free again
    assert await store.upload_offset("a") == 0


@pytest.mark.asyncio
async def test_sweep_removes_only_stale_uploads(store: BlobStore) -> None:
    await store.create_upload("old")
    await store.create_upload("new")
    infos = {info.upload_id: info for info in await store.list_uploads()}
    now = max(info.updated_at for info in infos.values())
    assert await store.sweep_uploads(3600, now=now) == []
    await store.append("new", 0, chunked(b"progress"))
    later = {i.upload_id: i for i in await store.list_uploads()}["new"].updated_at
    cutoff = (infos["old"].updated_at + later) / 2
    if infos["old"].updated_at < cutoff < later:
        removed = await store.sweep_uploads(0, now=cutoff)
        assert removed == ["old"]
    removed = await store.sweep_uploads(-1.0)  # everything is stale one second from now
    assert set(removed) <= {"old", "new"}
    assert await store.list_uploads() == []
    with pytest.raises(UploadNotFoundError):
        await store.upload_offset("new")


@pytest.mark.asyncio
async def test_concurrent_appends_are_serialized(store: BlobStore) -> None:
    await store.create_upload("u")
    results = await asyncio.gather(
        store.append("u", 0, chunked(b"a" * 300_000)),
        store.append("u", 0, chunked(b"b" * 300_000)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["OffsetMismatchError", "int"]
    assert await store.upload_offset("u") == 300_000


@pytest.mark.asyncio
async def test_open_upload_reads_only_durable_bytes_of_an_upload_in_progress(
    store: BlobStore,
) -> None:
    await store.create_upload("live")
    await store.append("live", 0, chunked(b"hello "))
    if not store.live_reads:  # the store says so clearly instead (S3)
        with pytest.raises(LiveReadUnsupportedError, match="not offered"):
            await store.open_upload("live", 0, 6)
        with pytest.raises(UploadNotFoundError):
            await store.open_upload("never", 0, 0)
        return
    async with await store.open_upload("live", 0, 6) as reader:
        assert b"".join([part async for part in reader]) == b"hello "
    async with await store.open_upload("live", 2, 5) as reader:
        assert b"".join([part async for part in reader]) == b"llo"
    with pytest.raises(InvalidRangeError):
        await store.open_upload("live", 0, 7)  # past the durable offset
    await store.append("live", 6, chunked(b"world"))
    await store.commit("live", "done", expected_sha256=sha(b"hello world"))
    with pytest.raises(UploadNotFoundError):  # committed: read the blob instead
        await store.open_upload("live", 0, 1)
    with pytest.raises(UploadNotFoundError):
        await store.open_upload("never", 0, 0)


@pytest.mark.asyncio
async def test_put_verifies_and_keeps_nothing_it_refused(store: BlobStore) -> None:
    for size in (0, 1000, 5 * MiB + 7):  # empty, one request, several parts
        data = random.Random(size).randbytes(size)
        key = fresh_id("p")
        info = await store.put(key, chunked(data), expected_sha256=sha(data))
        assert (info.size, info.sha256) == (size, sha(data))
        assert await read_all(store, key) == data
        with pytest.raises(BlobExistsError):
            await store.put(key, chunked(b"other"), expected_sha256=None)
        assert await read_all(store, key) == data
    with pytest.raises(DigestMismatchError):
        await store.put("bad", chunked(b"body" * 1000), expected_sha256=sha(b"other"))
    with pytest.raises(BlobNotFoundError):
        await store.stat("bad")
    await store.put("bad", chunked(b"again"), expected_sha256=None)  # the key is free
    assert await read_all(store, "bad") == b"again"
    assert await store.list_uploads() == []
