"""Two `wirelab serve` processes on one data folder, coordinated through Redis.

Real processes on 127.0.0.1, the machine's Redis (each test under its own key prefix,
deleted afterwards), one SQLite database and one blob folder shared by both.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from _tus_http import (
    StalledBody,
    create_upload,
    download,
    offset_of,
    patch,
)
from wirelab.db import connect, sqlite_url

from ._serve_process import ServeProcess, add_users

pytestmark = pytest.mark.slow

LOCK_TTL = "2"
MiB = 1024 * 1024


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.02)


@dataclass
class Cluster:
    data_dir: Path
    tokens: dict[str, str]
    coordination: str
    logs: Path
    servers: list[ServeProcess]

    def start(self, *extra: str) -> ServeProcess:
        log = self.logs / f"server{len(self.servers)}.log"
        server = ServeProcess(
            self.data_dir,
            "--coordination-url",
            self.coordination,
            "--relay-lock-ttl",
            LOCK_TTL,
            *extra,
            log=log,
        )
        self.servers.append(server)
        return server

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[Cluster]:
    data_dir = tmp_path / "data"
    tokens = add_users(data_dir, "alice", "bob")
    logs = tmp_path / "logs"
    logs.mkdir()
    found = Cluster(data_dir, tokens, f"{redis_url}?prefix={redis_prefix}", logs, [])
    try:
        yield found
    finally:
        for server in found.servers:
            server.kill()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{redis_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def partial_size(c: Cluster, location: str) -> int:
    """Bytes on disk of an upload in progress (durable or not)."""
    path = c.data_dir / "relay" / "uploads" / f"{location.rsplit('/', 1)[1]}.data"
    return path.stat().st_size if path.exists() else 0


def test_a_tus_upload_started_on_one_process_resumes_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.start(), cluster.start()
    data = os.urandom(3 * MiB + 123)
    location = create_upload(cluster, a, len(data))
    r = patch(cluster, a, location, 0, data[: 2 * MiB])
    assert r.status_code == 204, r.text
    assert offset_of(cluster, b, location) == 2 * MiB
    r = patch(
        cluster, b, location, 2 * MiB, data[2 * MiB :],
        **{"Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
    )  # fmt: skip
    assert r.status_code == 204, r.text
    assert download(cluster, a, r.headers["Wirelab-File-Url"]) == data


def test_a_long_poll_on_one_process_wakes_when_a_file_arrives_through_the_other(
    cluster: Cluster,
) -> None:
    a, b = cluster.start(), cluster.start()
    result: dict[str, Any] = {}

    def poll() -> None:
        r = httpx.post(
            f"{a.url}/v1/relay/inbox/next", params={"wait": 30}, headers=cluster.auth("bob"),
            timeout=60,
        )  # fmt: skip
        result["response"], result["at"] = r, time.monotonic()

    waiter = threading.Thread(target=poll)
    waiter.start()
    eventually(lambda: httpx.get(f"{a.url}/healthz").json()["relay_long_polls"] == 1)
    body = b"through b"
    sent = httpx.post(
        f"{b.url}/v1/relay/files",
        params={"to": "bob", "name": "b.txt"},
        headers={**cluster.auth("alice"), "Wirelab-Sha256": hashlib.sha256(body).hexdigest()},
        content=body,
    )
    assert sent.status_code == 201
    sent_at = time.monotonic()
    waiter.join(60)
    assert result["response"].status_code == 200
    assert result["response"].json()["id"] == sent.json()["id"]
    # Woken by the other process (well before the 30 s wait, or a lease end, ran out).
    assert result["at"] - sent_at < 5


def _sweeps(log: Path) -> list[str]:
    return re.findall(r"relay sweep done \(pid (\d+)\)", log.read_text())


def test_exactly_one_process_sweeps_and_another_takes_over_when_it_dies(
    cluster: Cluster,
) -> None:
    options = ("--relay-sweep-interval", "0.1", "--log-level", "debug")
    servers = [cluster.start(*options), cluster.start(*options)]
    logs = [s.log for s in servers if s.log is not None]
    assert len(logs) == 2
    eventually(lambda: sum(len(_sweeps(log)) for log in logs) >= 10, what="10 sweeps")
    counts = [len(_sweeps(log)) for log in logs]
    assert counts.count(0) == 1, counts  # one process sweeps, the other never did
    leader = counts.index(max(counts))
    other = 1 - leader
    servers[leader].kill()
    # The other one leads once the dead leader's lease has run out (lock TTL 2 s).
    eventually(lambda: len(_sweeps(logs[other])) >= 3, what="sweeps by the survivor")


def test_sigkill_mid_upload_and_the_upload_resumes_through_the_other_process(
    cluster: Cluster,
) -> None:
    a, b = cluster.start(), cluster.start()
    data = os.urandom(6 * MiB)
    location = create_upload(cluster, a, len(data))
    assert patch(cluster, a, location, 0, data[:MiB]).status_code == 204
    # A second PATCH on a stalls after 3 MiB more (written, not all made durable)...
    stalled = StalledBody(data[MiB : 4 * MiB], data[4 * MiB :])
    thread = stalled.run(lambda body: patch(cluster, a, location, MiB, body))
    eventually(lambda: partial_size(cluster, location) > 2 * MiB, what="bytes on disk")
    a.kill()  # ...when a dies, holding the upload's lease
    stalled.go()
    thread.join(60)
    assert stalled.response is None and stalled.error is not None

    # b kept serving, and resumes the upload once a's lease ran out.
    assert httpx.get(f"{b.url}/healthz").status_code == 200
    offset = offset_of(cluster, b, location)
    assert MiB <= offset < 4 * MiB
    r = patch(
        cluster, b, location, offset, data[offset:],
        **{"Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
    )  # fmt: skip
    assert r.status_code == 204, r.text
    assert download(cluster, b, r.headers["Wirelab-File-Url"]) == data


def test_starting_a_process_leaves_the_uploads_in_flight_elsewhere_intact(
    cluster: Cluster,
) -> None:
    a = cluster.start()
    data = os.urandom(4 * MiB)
    location = create_upload(cluster, a, len(data))
    digest = {"Wirelab-Sha256": hashlib.sha256(data).hexdigest()}
    upload = StalledBody(data[: 3 * MiB], data[3 * MiB :])
    upload_thread = upload.run(lambda body: patch(cluster, a, location, 0, body, **digest))
    direct_data = os.urandom(3 * MiB)
    direct = StalledBody(direct_data[: 2 * MiB], direct_data[2 * MiB :])
    direct_thread = direct.run(
        lambda body: httpx.post(
            f"{a.url}/v1/relay/files",
            params={"to": "bob", "name": "direct.bin"},
            headers={
                **cluster.auth("alice"),
                "Wirelab-Sha256": hashlib.sha256(direct_data).hexdigest(),
            },
            content=body,
            timeout=60,
        )
    )
    eventually(lambda: partial_size(cluster, location) > MiB, what="tus bytes on disk")
    eventually(lambda: bool(list((cluster.data_dir / "relay" / "blobs").rglob("*"))))

    b = cluster.start()  # its start-up recovery runs while both requests are in flight
    upload.go()
    direct.go()
    upload_thread.join(60)
    direct_thread.join(60)
    assert upload.response is not None and upload.response.status_code == 204
    assert direct.response is not None and direct.response.status_code == 201
    assert download(cluster, b, upload.response.headers["Wirelab-File-Url"]) == data
    assert download(cluster, b, f"/v1/relay/files/{direct.response.json()['id']}") == direct_data


def test_one_writer_per_upload_across_processes(cluster: Cluster) -> None:
    a, b = cluster.start(), cluster.start()
    data = os.urandom(3 * MiB)
    location = create_upload(cluster, a, len(data))
    digest = {"Wirelab-Sha256": hashlib.sha256(data).hexdigest()}
    writer = StalledBody(data[: 2 * MiB], data[2 * MiB :])
    thread = writer.run(lambda body: patch(cluster, a, location, 0, body, **digest))
    eventually(lambda: partial_size(cluster, location) > MiB, what="bytes on disk")
    # A second writer through b waits for a's lease (renewed: a is alive), then gives up.
    busy = patch(cluster, b, location, offset_of(cluster, b, location), b"x" * 10)
    assert busy.status_code == 423, busy.text
    assert "another request" in busy.json()["detail"]
    writer.go()
    thread.join(60)
    assert writer.response is not None and writer.response.status_code == 204
    assert download(cluster, b, writer.response.headers["Wirelab-File-Url"]) == data


def _journal(data_dir: Path) -> list[str]:
    async def read() -> list[str]:
        async with await connect(sqlite_url(data_dir / "wirelab.db")) as db:
            return await db.relay.journal_list()

    return asyncio.run(read())


def test_the_sweep_removes_what_a_dead_process_was_sending(cluster: Cluster) -> None:
    a, _b = cluster.start(), cluster.start("--relay-sweep-interval", "0.2")
    data = os.urandom(3 * MiB)
    sending = StalledBody(data[: 2 * MiB], data[2 * MiB :])
    thread = sending.run(
        lambda body: httpx.post(
            f"{a.url}/v1/relay/files",
            params={"to": "bob", "name": "lost.bin"},
            headers={**cluster.auth("alice"), "Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
            content=body,
            timeout=60,
        )
    )
    blobs = cluster.data_dir / "relay" / "blobs"
    eventually(lambda: any(p.is_file() for p in blobs.rglob("*")), what="a partial blob")
    assert len(_journal(cluster.data_dir)) == 1
    a.kill()  # mid-send: its journaled key and partial blob are left behind
    sending.go()
    thread.join(60)
    # b (leading the sweep once a's leases ran out) removes both; b never restarted.
    eventually(lambda: not _journal(cluster.data_dir), what="an empty journal")
    assert not any(p.is_file() for p in blobs.rglob("*"))


def test_an_upload_is_offered_live_once_across_processes(cluster: Cluster) -> None:
    a, b = cluster.start(), cluster.start()
    data = os.urandom(2 * MiB)
    location = create_upload(cluster, a, len(data))

    def take_live(server: ServeProcess) -> httpx.Response:
        return httpx.post(
            f"{server.url}/v1/relay/inbox/next",
            params={"live": "true", "wait": 0},
            headers=cluster.auth("bob"),
        )

    offered = take_live(b)
    assert offered.status_code == 200 and offered.json()["live"] is True
    assert take_live(a).status_code == 204  # offered once, by whichever process
    received: dict[str, bytes] = {}

    def receive() -> None:
        url = b.url + offered.json()["url"]
        with httpx.stream("GET", url, headers=cluster.auth("bob"), timeout=60) as r:
            received["body"] = r.read()

    reader = threading.Thread(target=receive)
    reader.start()
    digest = {"Wirelab-Sha256": hashlib.sha256(data).hexdigest()}
    assert patch(cluster, a, location, 0, data, **digest).status_code == 204
    reader.join(60)
    assert received["body"] == data  # streamed by b from what a wrote
