"""A full disk, for real: a 4 MiB tmpfs holds the server's data folder (root only; the
test is skipped with the reason elsewhere). An upload that does not fit is a 507 JSON
answer and leaves no bytes behind; acknowledging and deleting still work on a full disk
(the disk reserve makes room for their database write)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from wirelab.relay import RelayLimits
from wirelab.server import ServerConfig
from wirelab.testing._live import LiveServer, live_server

from .conftest import add_users
from .test_relay_quota import _create, _send
from .test_relay_tus import PATCH, TUS

_KIB = 1024
RESERVE = 256 * _KIB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted under ``tmp_path`` for the test, unmounted after it."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a real full file system needs root to mount a small tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


@dataclass
class Full:
    server: LiveServer
    alice: httpx.Client
    bob: httpx.Client
    mount: Path

    @property
    def uploads(self) -> Path:
        return self.mount / "data" / "relay" / "uploads"

    def fill(self, leave: int) -> Path:
        """Fill the disk with a file of the test's own, leaving about ``leave`` bytes."""
        filler = self.mount / "filler"
        for block in (64 * _KIB, 4 * _KIB, 512):
            with open(filler, "ab", buffering=0) as f, suppress(OSError):
                while True:
                    f.write(bytes(block))
        os.truncate(filler, max(0, filler.stat().st_size - leave))
        return filler


@pytest.fixture
def full(small_disk: Path) -> Iterator[Full]:
    config = ServerConfig(
        data_dir=small_disk / "data",
        relay_limits=RelayLimits(disk_reserve=RESERVE, sweep_interval=0.2),
    )
    with live_server(config) as server:
        tokens = add_users(server, "alice", "bob")
        clients = {
            name: httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {t}"}, timeout=30
            )
            for name, t in tokens.items()
        }
        with clients["alice"], clients["bob"]:
            yield Full(server, clients["alice"], clients["bob"], small_disk)


def test_announced_size_that_does_not_fit_is_507_before_the_body(full: Full) -> None:
    r = _create(full.alice, 8 * 1024 * _KIB)
    assert r.status_code == 507 and r.headers["Tus-Resumable"] == "1.0.0"
    assert "do not fit on the server's disk" in r.json()["detail"]
    # A direct send with Content-Length: answered before its body is sent.
    conn = http.client.HTTPConnection("127.0.0.1", full.server.port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/relay/files?to=bob&name=big.bin")
        conn.putheader("Authorization", str(full.alice.headers["Authorization"]))
        conn.putheader("Wirelab-Sha256", "0" * 64)
        conn.putheader("Content-Length", str(8 * 1024 * _KIB))
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 507
        assert "do not fit" in json.loads(answer.read())["detail"]
    finally:
        conn.close()
    assert list(full.uploads.glob("*")) == []


def test_disk_full_while_receiving_is_507_json_and_frees_the_bytes(full: Full) -> None:
    kept = os.urandom(100 * _KIB)
    first = _send(full.alice, kept, hashlib.sha256(kept).hexdigest())
    assert first.status_code == 201, first.text
    upload = _create(full.alice, 300 * _KIB)
    assert upload.status_code == 201
    url = upload.headers["Location"]
    filler = full.fill(leave=48 * _KIB)

    # A chunked direct send runs out of disk midway: 507 JSON, nothing of it stays.
    data = os.urandom(300 * _KIB)
    r = _send(full.alice, iter([data]), hashlib.sha256(data).hexdigest())
    assert r.status_code == 507, r.text
    assert "no space left" in r.json()["detail"]
    partial = full.uploads / f"{url.rsplit('/', 1)[1]}.data"
    assert list(full.uploads.glob("*.data")) == [partial]  # only the tus upload's

    # A tus PATCH too; the upload keeps what was durable before, not a byte more.
    r = full.alice.patch(url, content=data, headers={**PATCH, "Upload-Offset": "0"})
    assert r.status_code == 507 and r.headers["Tus-Resumable"] == "1.0.0"
    assert "resume later" in r.json()["detail"]
    offset = int(full.alice.head(url, headers=TUS).headers["Upload-Offset"])
    assert partial.stat().st_size == offset

    # Make the disk completely full: acknowledging and terminating still work.
    full.fill(leave=0)
    assert full.bob.get(first.json()["url"]).content == kept
    assert full.bob.delete(first.json()["url"]).status_code == 204
    assert full.alice.delete(url, headers=TUS).status_code == 204
    assert full.bob.get("/v1/relay/inbox").json()["files"] == []
    assert list(full.uploads.glob("*")) == []

    # Once there is room again, uploads work and the sweeper restores the reserve.
    filler.unlink()
    again = _send(full.alice, kept, hashlib.sha256(kept).hexdigest())
    assert again.status_code == 201
    reserve = full.mount / "data" / "relay" / "reserve"
    deadline = time.monotonic() + 10
    while not reserve.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reserve.stat().st_size == RESERVE
