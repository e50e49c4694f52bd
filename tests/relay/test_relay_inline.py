"""Small direct sends stored inline (one database commit holds the bytes and the row):
served, counted, expired and deleted exactly like files stored as blobs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from wirelab.db import connect
from wirelab.relay import RelayLimits

from .conftest import Relay, add_users, stored_files
from .test_relay_api import inbox, send

INLINE_MAX = 64 * 1024


def _db(relay: Relay, query: Callable[[Any], Any]) -> Any:
    """Run ``query(db)`` (a coroutine function) on the server's own database."""

    async def run() -> Any:
        async with await connect(relay.server.app.state.config.metadata_url) as db:
            return await query(db)

    return asyncio.run(run())


def _journal(relay: Relay) -> list[str]:
    return list(_db(relay, lambda db: db.relay.journal_list()))


@pytest.fixture
def small(relay_factory: Callable[..., Relay]) -> Relay:
    return relay_factory(relay_limits=RelayLimits(inline_max=INLINE_MAX, sweep_interval=0.1))


def test_small_send_is_inline_large_one_a_blob(small: Relay) -> None:
    little, big = os.urandom(INLINE_MAX), os.urandom(INLINE_MAX + 1)
    for data in (little, big):
        assert send(small.alice, data).status_code == 201
    blobs = stored_files(small, "blobs")
    assert len(blobs) == 1  # only the large file has a blob
    files = _db(small, lambda db: db.relay.list_inbox("bob", time.time()))
    assert [(f.size, f.inline) for f in files] == [(len(little), True), (len(big), False)]
    assert _db(small, lambda db: db.relay.read_content(files[0].id)) == little
    assert _db(small, lambda db: db.relay.read_content(files[1].id)) is None
    assert _journal(small) == []


@pytest.mark.parametrize("inline_max", [0, INLINE_MAX], ids=["blob", "inline"])
@pytest.mark.distributed
def test_inline_and_blob_files_answer_alike(
    relay_factory: Callable[..., Relay], inline_max: int
) -> None:
    relay = relay_factory(relay_limits=RelayLimits(inline_max=inline_max))
    data = os.urandom(5000)
    doc = send(relay.alice, data, max_downloads="3").json()
    url = doc["url"]
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    head = relay.bob.head(url)
    assert (head.status_code, head.headers["etag"]) == (200, etag)
    part = relay.bob.get(url, headers={"Range": "bytes=4990-"})  # to the end: counted
    assert (part.status_code, part.content) == (206, data[4990:])
    assert part.headers["content-range"] == "bytes 4990-4999/5000"
    empty = relay.bob.get(url, headers={"Range": "bytes=5000-"})
    assert empty.status_code == 416
    same = relay.bob.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (same.status_code, same.content) == (206, data[:10])
    for _ in range(2):  # two full downloads: the limit
        assert relay.bob.get(url).content == data
    assert relay.bob.get(url).status_code == 410
    assert inbox(relay.bob)[0]["downloads"] == 3
    assert relay.bob.delete(url).status_code == 204
    assert inbox(relay.bob) == []
    relay.server.settle()  # on S3 the blob is deleted in the background
    assert stored_files(relay, "blobs") == []
    assert _journal(relay) == []


def test_empty_inline_file(small: Relay) -> None:
    doc = send(small.alice, b"").json()
    got = small.bob.get(doc["url"])
    assert (got.status_code, got.content) == (200, b"")
    assert stored_files(small, "blobs") == []


def test_inline_digest_mismatch_stores_nothing(small: Relay) -> None:
    r = send(small.alice, b"hello", digest="0" * 64)
    assert r.status_code == 422
    assert "nothing was stored" in r.json()["detail"]
    assert inbox(small.bob) == []
    assert _journal(small) == []


def test_inline_quota_and_recipient_are_checked_in_the_commit(
    relay_factory: Callable[..., Relay],
) -> None:
    relay = relay_factory(relay_limits=RelayLimits(quota_bytes=10_000, quota_files=2))
    assert send(relay.alice, os.urandom(6000)).status_code == 201
    over = send(relay.alice, os.urandom(6000))
    assert over.status_code == 507
    assert "bytes" in over.json()["detail"]
    assert send(relay.alice, b"x").status_code == 201
    assert send(relay.alice, b"y").status_code == 429  # a third file
    assert send(relay.alice, b"z", to="nobody").status_code == 404
    assert [f["size"] for f in inbox(relay.bob)] == [6000, 1]
    assert _journal(relay) == []


def test_inline_files_expire_without_journal_or_blob(small: Relay) -> None:
    short = send(small.alice, b"short", ttl="0.2").json()
    kept = send(small.alice, b"kept").json()
    deadline = time.monotonic() + 10
    while len(inbox(small.bob)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [f["id"] for f in inbox(small.bob)] == [kept["id"]]
    # the sweep deletes the row, bytes included (expired files are hidden before that)
    while _db(small, lambda db: db.relay.read_content(short["id"])) is not None:
        assert time.monotonic() < deadline, "the sweeper did not remove the expired file"
        time.sleep(0.05)
    assert _journal(small) == []
    assert stored_files(small, "blobs") == []


def test_removing_the_recipient_removes_inline_files(small: Relay) -> None:
    doc = send(small.alice, b"for bob").json()
    _db(small, lambda db: db.users.remove_user("bob"))
    assert _db(small, lambda db: db.relay.read_content(doc["id"])) is None
    assert _journal(small) == []  # nothing to delete from the blob store
    tokens = add_users(small.server, "bob")  # the name reused starts empty
    listed = small.bob.get("/v1/relay/inbox", headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert listed.json()["files"] == []
