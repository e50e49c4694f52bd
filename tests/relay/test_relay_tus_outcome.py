"""tus uploads: deferred digest (``Wirelab-Sha256``), empty uploads, finished uploads that
stay answerable to their owner, and the recovery of a commit cut before its file row."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from wirelab.db import connect, sqlite_url
from wirelab.relay import RelayLimits
from wirelab.storage import LocalBlobStore

from ._serve_process import ServeProcess as _Serve
from ._serve_process import add_users
from .conftest import Relay

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
EMPTY = hashlib.sha256(b"").hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _create(client: httpx.Client, length: int, **meta: str) -> httpx.Response:
    pairs = {"filename": "f.bin", "to": "bob", **meta}
    return client.post(
        "/v1/relay/uploads",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": ",".join(f"{k} {_b64(v)}" for k, v in pairs.items()),
        },
    )


def _new(client: httpx.Client, length: int, **meta: str) -> str:
    r = _create(client, length, **meta)
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def _patch(client: httpx.Client, url: str, offset: int, body: bytes, **h: str) -> httpx.Response:
    return client.patch(url, content=body, headers={**PATCH, "Upload-Offset": str(offset), **h})


def _head(client: httpx.Client, url: str) -> httpx.Response:
    return client.head(url, headers=TUS)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.distributed
def test_deferred_digest_on_the_completing_patch(relay: Relay) -> None:
    data = os.urandom(200_000)
    url = _new(relay.alice, len(data))  # no 'sha256' metadata
    assert _patch(relay.alice, url, 0, data[:150_000]).status_code == 204
    r = _patch(relay.alice, url, 150_000, data[150_000:], **{"Wirelab-Sha256": _digest(data)})
    assert r.status_code == 204, r.text
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["url"] == r.headers["Wirelab-File-Url"] and doc["sha256"] == _digest(data)
    assert relay.bob.get(doc["url"]).content == data


def test_upload_without_any_digest_completes_with_the_servers_digest(relay: Relay) -> None:
    """A generic tus client sends no digest at all: the server computes it (before, the
    last PATCH was refused after every other byte had been sent)."""
    data = os.urandom(10_000)
    url = _new(relay.alice, len(data))
    assert _patch(relay.alice, url, 0, data[:5000]).status_code == 204
    r = _patch(relay.alice, url, 5000, data[5000:])
    assert r.status_code == 204, r.text
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["url"] == r.headers["Wirelab-File-Url"] and doc["sha256"] == _digest(data)
    assert relay.bob.get(doc["url"]).content == data


def test_header_contradicting_the_metadata_is_422_and_keeps_the_upload(relay: Relay) -> None:
    data = b"conflicting digests"
    url = _new(relay.alice, len(data), sha256=_digest(data))
    r = _patch(relay.alice, url, 0, data, **{"Wirelab-Sha256": _digest(b"other")})
    assert r.status_code == 422 and "differs" in r.json()["detail"]
    head = _head(relay.alice, url)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "0"
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []
    r = _patch(relay.alice, url, 0, data, **{"Wirelab-Sha256": _digest(data).upper()})
    assert r.status_code == 204  # the same digest in upper case agrees
    assert len(relay.bob.get("/v1/relay/inbox").json()["files"]) == 1


def test_wrong_deferred_digest_deletes_the_upload(relay: Relay) -> None:
    url = _new(relay.alice, 5)
    r = _patch(relay.alice, url, 0, b"abcde", **{"Wirelab-Sha256": _digest(b"edcba")})
    assert r.status_code == 422 and "SHA-256 mismatch" in r.json()["detail"]
    assert _head(relay.alice, url).status_code == 404
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []


def test_invalid_wirelab_sha256_is_400(relay: Relay) -> None:
    url = _new(relay.alice, 5)
    r = _patch(relay.alice, url, 0, b"abcde", **{"Wirelab-Sha256": "xyz"})
    assert r.status_code == 400 and "Wirelab-Sha256" in r.json()["detail"]
    assert _head(relay.alice, url).headers["Upload-Offset"] == "0"


def test_chunked_last_patch_without_digest_completes(relay: Relay) -> None:
    data = b"streamed without a length"
    url = _new(relay.alice, len(data))

    def body() -> Iterator[bytes]:
        yield data  # a generator body: sent chunked, without Content-Length

    r = relay.alice.patch(url, content=body(), headers={**PATCH, "Upload-Offset": "0"})
    assert r.status_code == 204 and "Wirelab-File-Url" in r.headers
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["sha256"] == _digest(data)
    assert relay.bob.get(doc["url"]).content == data


@pytest.mark.parametrize("sha256", [None, EMPTY])
def test_empty_upload_completes_at_creation(relay: Relay, sha256: str | None) -> None:
    r = _create(relay.alice, 0, **({} if sha256 is None else {"sha256": sha256}))
    assert r.status_code == 201, r.text
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert r.headers["Wirelab-File-Url"] == doc["url"]
    assert (doc["size"], doc["sha256"]) == (0, EMPTY)
    head = _head(relay.alice, r.headers["Location"])
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "0"


def test_empty_upload_with_another_digest_is_422(relay: Relay) -> None:
    r = _create(relay.alice, 0, sha256=_digest(b"x"))
    assert r.status_code == 422 and "mismatch" in r.json()["detail"]
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []
    data_dir: Path = relay.server.app.state.config.data_dir
    assert list((data_dir / "relay" / "uploads").glob("*")) == []


def test_finished_upload_answers_its_owner_idempotently(relay: Relay) -> None:
    data = b"finished"
    url = _new(relay.alice, len(data), sha256=_digest(data))
    done = _patch(relay.alice, url, 0, data)
    assert done.status_code == 204
    file_url = done.headers["Wirelab-File-Url"]
    head = _head(relay.alice, url)
    assert head.status_code == 200 and head.headers["Wirelab-File-Url"] == file_url
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    retry = _patch(relay.alice, url, len(data), b"")  # the client lost the first answer
    assert retry.status_code == 204 and retry.headers["Wirelab-File-Url"] == file_url
    assert retry.headers["Upload-Offset"] == str(len(data))
    r = _patch(relay.alice, url, 0, data)
    assert r.status_code == 409 and r.headers["Upload-Offset"] == str(len(data))
    assert _patch(relay.alice, url, len(data), b"more").status_code == 413
    r = _patch(relay.alice, url, len(data), b"", **{"Wirelab-Sha256": _digest(b"no")})
    assert r.status_code == 422
    assert _head(relay.bob, url).status_code == 404  # only its owner
    assert len(relay.bob.get("/v1/relay/inbox").json()["files"]) == 1  # delivered once
    assert relay.alice.delete(url, headers=TUS).status_code == 204  # forgets the record
    assert _head(relay.alice, url).status_code == 404
    assert relay.bob.get(file_url).content == data  # the file is untouched


def test_finished_upload_record_is_swept_at_expiry(relay_factory: Callable[..., Relay]) -> None:
    # The expiry leaves room for the PATCH on a slow machine.
    relay = relay_factory(relay_limits=RelayLimits(upload_expiry=2.0, sweep_interval=0.2))
    url = _new(relay.alice, 3)
    assert _patch(relay.alice, url, 0, b"abc", **{"Wirelab-Sha256": _digest(b"abc")}).is_success
    deadline = time.monotonic() + 15
    while _head(relay.alice, url).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _head(relay.alice, url).status_code == 404
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]  # the file keeps its own ttl
    assert relay.bob.get(doc["url"]).content == b"abc"


@pytest.mark.slow
def test_commit_without_file_row_is_finished_at_restart(tmp_path: Path) -> None:
    """The state "blob committed, upload row present, no file row" (a crash between the
    blob commit and the db transaction), built with the real stores: after a restart the
    file is in the inbox and the upload reports complete."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db_url = sqlite_url(data_dir / "wirelab.db")

    tokens = add_users(data_dir, "alice", "bob")
    auth = {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}
    data = os.urandom(100_000)
    server = _Serve(data_dir)
    try:
        with httpx.Client(base_url=server.url, headers=auth["alice"]) as alice:
            url = _new(alice, len(data))
            assert _patch(alice, url, 0, data[:-1]).status_code == 204
    finally:
        server.kill()
    upload_id = url.rsplit("/", 1)[1]

    async def commit_behind_the_server() -> None:
        # What the completing PATCH does up to the crash: last byte, blob commit.
        blobs = LocalBlobStore(data_dir / "relay")
        await blobs.recover()

        async def last() -> AsyncIterator[bytes]:
            yield data[-1:]

        assert await blobs.append(upload_id, len(data) - 1, last()) == len(data)
        await blobs.commit(upload_id, upload_id, expected_sha256=_digest(data))
        async with await connect(db_url) as db:
            assert await db.relay.journal_list() == [upload_id]
            assert await db.relay.list_inbox("bob", time.time()) == []

    asyncio.run(commit_behind_the_server())
    server = _Serve(data_dir)
    try:
        alice = httpx.Client(base_url=server.url, headers=auth["alice"])
        bob = httpx.Client(base_url=server.url, headers=auth["bob"])
        with alice, bob:
            (doc,) = bob.get("/v1/relay/inbox").json()["files"]
            assert doc["id"] == upload_id and doc["sha256"] == _digest(data)
            assert bob.get(doc["url"]).content == data
            head = _head(alice, url)
            assert head.status_code == 200 and head.headers["Wirelab-File-Url"] == doc["url"]
            assert head.headers["Upload-Offset"] == str(len(data))
    finally:
        server.kill()

    async def journal() -> list[str]:
        async with await connect(db_url) as db:
            return await db.relay.journal_list()

    assert asyncio.run(journal()) == []
