"""SIGKILL of a real ``wirelab serve`` process in the middle of an upload."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wirelab.db import connect, sqlite_url

from ._serve_process import ServeProcess as _Serve
from ._serve_process import add_users

pytestmark = pytest.mark.slow


def _stored(blobs: Path) -> dict[str, int]:
    """The blobs in the store (digest files aside) and their sizes."""
    return {p.name: p.stat().st_size for p in blobs.glob("*/*") if p.suffix != ".sha256"}


def test_sigkill_mid_upload_leaves_no_partial_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    tokens = add_users(data_dir, "alice", "bob")
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    earlier = [os.urandom(100_000), b"second file"]

    server = _Serve(data_dir)
    try:
        for i, data in enumerate(earlier):
            response = httpx.post(
                server.url + "/v1/relay/files",
                params={"to": "bob", "name": f"f{i}"},
                content=data,
                headers={**alice, "Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
            )
            assert response.status_code == 201
        stop = threading.Event()

        def body() -> Iterator[bytes]:
            for _ in range(1000):
                if stop.is_set():
                    return
                yield b"z" * 65536
                time.sleep(0.01)

        def upload() -> None:
            with contextlib.suppress(httpx.TransportError):
                httpx.post(
                    server.url + "/v1/relay/files",
                    params={"to": "bob", "name": "partial"},
                    content=body(),
                    headers={**alice, "Wirelab-Sha256": "0" * 64},
                    timeout=30,
                )

        uploader = threading.Thread(target=upload)
        blobs = data_dir / "relay" / "blobs"
        committed = _stored(blobs)
        uploader.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # A direct send writes its blob in place; it is visible only once committed.
            sizes = [n for k, n in _stored(blobs).items() if k not in committed]
            if sizes and max(sizes) > 256 * 1024:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the upload never reached the server's store")
        server.kill()
        stop.set()
        uploader.join(30)
    finally:
        server.kill()

    server = _Serve(data_dir)
    try:
        listed = httpx.get(server.url + "/v1/relay/inbox", headers=bob).json()["files"]
        assert [f["name"] for f in listed] == ["f0", "f1"]
        for doc, data in zip(listed, earlier, strict=True):
            got = httpx.get(server.url + doc["url"], headers=bob)
            assert got.content == data
            assert doc["sha256"] == hashlib.sha256(data).hexdigest()
        assert _stored(blobs) == committed  # the partial one was removed at start-up
        assert list((data_dir / "relay" / "uploads").glob("*")) == []
    finally:
        server.kill()


def _journal_and_rows(data_dir: Path) -> tuple[list[str], int]:
    """The blob journal's keys and the number of file rows, read from the database file."""

    async def read() -> tuple[list[str], int]:
        async with await connect(sqlite_url(data_dir / "wirelab.db")) as db:
            keys = await db.relay.journal_list()
            files = await db.relay.list_inbox("bob", 0.0)
            return keys, len(files)

    return asyncio.run(read())


@pytest.mark.parametrize("kill_after", [1, 15, 40], ids=lambda n: f"after-{n}-sends")
def test_sigkill_during_small_sends_keeps_every_acknowledged_file(
    tmp_path: Path, kill_after: int
) -> None:
    """Small sends are stored inline: one commit holds the bytes and the row. SIGKILL
    while several are in flight (receiving, hashing, committing) and one is mid-body:
    after the restart every acknowledged file is listed whole, the others are absent or
    whole (committed, their answer lost), and no blob, journal entry or partial remains."""
    data_dir = tmp_path / "data"
    tokens = add_users(data_dir, "alice", "bob")
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    server = _Serve(data_dir)
    acked: dict[str, bytes] = {}  # file id -> body
    attempted: dict[str, bytes] = {}  # sha256 -> body
    lock = threading.Lock()
    stop = threading.Event()

    def sender(seed: int) -> None:
        with httpx.Client(base_url=server.url, headers=alice, timeout=10) as client:
            n = 0
            while not stop.is_set():
                n += 1
                data = os.urandom(1 + (seed * 7919 + n * 104729) % 60_000)
                digest = hashlib.sha256(data).hexdigest()
                with lock:
                    attempted[digest] = data
                try:
                    r = client.post(
                        "/v1/relay/files",
                        params={"to": "bob", "name": f"s{seed}-{n}"},
                        content=data,
                        headers={"Wirelab-Sha256": digest},
                    )
                except httpx.TransportError:
                    return
                assert r.status_code == 201, r.text
                with lock:
                    acked[r.json()["id"]] = data

    partial = os.urandom(60_000)

    def slow_body() -> Iterator[bytes]:
        for i in range(0, len(partial), 1000):
            if stop.is_set():
                return
            yield partial[i : i + 1000]
            time.sleep(0.05)

    def slow_send() -> None:
        # It fails either way: the server dies, or the body ends short when stopped.
        with contextlib.suppress(Exception):
            httpx.post(
                server.url + "/v1/relay/files",
                params={"to": "bob", "name": "partial"},
                content=slow_body(),
                headers={
                    **alice,
                    "Content-Length": str(len(partial)),  # small: the inline path
                    "Wirelab-Sha256": hashlib.sha256(partial).hexdigest(),
                },
                timeout=30,
            )

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=slow_send))
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acked) < kill_after and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(acked) >= kill_after, "the sends did not get through"
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(30)
        server.start()
        listed = httpx.get(server.url + "/v1/relay/inbox", headers=bob).json()["files"]
        ids = {doc["id"] for doc in listed}
        assert set(acked) <= ids  # nothing acknowledged is lost
        for doc in listed:
            assert doc["name"] != "partial"  # a body that never arrived whole is absent
            data = attempted[doc["sha256"]]  # anything listed was sent whole
            assert doc["size"] == len(data)
            assert httpx.get(server.url + doc["url"], headers=bob).content == data
        for file_id, data in acked.items():
            assert next(d for d in listed if d["id"] == file_id)["sha256"] == (
                hashlib.sha256(data).hexdigest()
            )
        assert _stored(data_dir / "relay" / "blobs") == {}  # inline: no blob, no orphan
        assert _journal_and_rows(data_dir) == ([], len(listed))
    finally:
        stop.set()
        server.kill()
