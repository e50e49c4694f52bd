"""SIGKILL of a real ``wirelab serve`` process in the middle of an upload."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
