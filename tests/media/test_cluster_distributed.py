"""The distributed deployment end to end: two ``wirelab serve`` processes and two
``wirelab worker`` processes sharing a PostgreSQL database, an S3 bucket (moto) and
Redis (coordination and Celery), each process with a data folder of its own (as on
separate hosts). Server A is SIGKILLed mid-upload; B keeps serving and the upload
resumes through it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from _tus_http import StalledBody, create_upload, download, offset_of, patch
from wirelab.db import connect
from wirelab.media.testing import MediaServer

from ._workers import WorkerProcess, serve_process_module, store_flags
from .conftest import wait_job

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
LOCK_TTL = 2.0
"""``--relay-lock-ttl``: a dead server's upload leases free up this long after it died."""


@dataclass
class Cluster:
    """Two servers (``a``, ``b``), two workers, users alice and bob."""

    servers: list[Any]
    workers: list[WorkerProcess]
    tokens: dict[str, str]
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def a(self) -> Any:
        return self.servers[0]

    @property
    def b(self) -> Any:
        return self.servers[1]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def client(self, server: Any, user: str) -> httpx.Client:
        return httpx.Client(base_url=server.url, headers=self.auth(user), timeout=60)


def _add_users(database_url: str, *names: str) -> dict[str, str]:
    async def add() -> dict[str, str]:
        async with await connect(database_url) as db:
            return {name: (await db.users.add_user(name))[1] for name in names}

    return asyncio.run(add())


@pytest.fixture
def cluster(
    tmp_path: Path,
    postgres_factory: Callable[..., str],
    s3_buckets: Callable[[], str],
    redis_scratch: tuple[str, str],
) -> Iterator[Cluster]:
    serve = serve_process_module()
    database, storage = postgres_factory(), s3_buckets()
    redis_url, prefix = redis_scratch
    queue = prefix.rstrip(":")
    stores = [*store_flags(database, storage), "--database-pool-size", "3"]
    jobs = ["--jobs-url", redis_url, "--jobs-queue", queue]
    media = ["--media-allow-network", "127.0.0.0/8"]
    tokens = _add_users(database, "alice", "bob")
    servers: list[Any] = []
    workers: list[WorkerProcess] = []
    try:
        coordination = ["--coordination-url", f"{redis_url}?prefix={prefix}"]
        lease = ["--relay-lock-ttl", str(LOCK_TTL)]
        for name in ("a", "b"):
            folder, log = tmp_path / f"server-{name}", tmp_path / f"server-{name}.log"
            args = [*stores, *jobs, *media, *coordination, *lease]
            servers.append(serve.ServeProcess(folder, *args, log=log))
        for name in ("1", "2"):
            folder = tmp_path / f"worker-{name}"
            folder.mkdir()
            workers.append(WorkerProcess(folder, redis_url, queue, *stores, *media))
        yield Cluster(servers, workers, tokens)
    finally:
        for server in servers:
            server.kill()
        for worker in workers:
            worker.stop()


def _long_poll_wakes_across_servers(c: Cluster) -> None:
    """A long poll waiting in B returns the file sent through A (well before its wait)."""
    result: dict[str, Any] = {}

    def poll() -> None:
        with c.client(c.b, "bob") as bob:
            result["response"] = bob.post("/v1/relay/inbox/next", params={"wait": 30})
        result["at"] = time.monotonic()

    waiter = threading.Thread(target=poll)
    waiter.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{c.b.url}/healthz").json()["relay_long_polls"] != 1:
        assert time.monotonic() < deadline, "the long poll did not start"
        time.sleep(0.02)
    body = b"sent through a"
    sent = httpx.post(
        f"{c.a.url}/v1/relay/files",
        params={"to": "bob", "name": "a.txt"},
        headers={**c.auth("alice"), "Wirelab-Sha256": hashlib.sha256(body).hexdigest()},
        content=body,
    )
    assert sent.status_code == 201, sent.text
    sent_at = time.monotonic()
    waiter.join(60)
    assert result["response"].status_code == 200, result["response"].text
    assert result["response"].json()["id"] == sent.json()["id"]
    assert result["at"] - sent_at < 15  # woken (pub/sub), not the 30 s wait running out
    assert download(c, c.b, f"/v1/relay/files/{sent.json()['id']}") == body


def _media_job_runs_on_a_worker(c: Cluster, source: MediaServer) -> None:
    """A job submitted on A: the same status from B, run by exactly one of the workers."""
    with c.client(c.a, "alice") as on_a, c.client(c.b, "alice") as on_b:
        submitted = on_a.post(
            "/v1/media/jobs", json={"source": source.url("video.mp4"), "end": "2"}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = str(submitted.json()["id"])
        from_b = on_b.get(f"/v1/media/jobs/{job_id}")
        assert from_b.status_code == 200, from_b.text
        assert from_b.json()["id"] == job_id
        assert from_b.json()["request"] == submitted.json()["request"]
        job, _ = wait_job(on_b, job_id)
        assert job["state"] == "succeeded", job
        assert on_a.get(f"/v1/media/jobs/{job_id}").json() == job  # one shared database
        result = on_b.get(job["result"]["url"]).content
        assert hashlib.sha256(result).hexdigest() == job["result"]["sha256"]
    ran = [w for w in c.workers if f"job {job_id}: attempt 1 on celery-" in w.log.read_text()]
    assert len(ran) == 1, [w.log.read_text()[-2000:] for w in c.workers]


def _concurrent_appends_never_mix(c: Cluster) -> None:
    """Two appends to one upload at once, through A and B: B's waits for A's lease and
    gets 423; the upload holds A's bytes exactly."""
    data = os.urandom(3 * MiB)
    location = create_upload(c, c.a, len(data))
    digest = {"Wirelab-Sha256": hashlib.sha256(data).hexdigest()}
    first = StalledBody(data[: 2 * MiB], data[2 * MiB :])
    thread = first.run(lambda body: patch(c, c.a, location, 0, body, **digest))
    first.wait_sent()
    second = patch(c, c.b, location, 0, os.urandom(len(data)))
    assert second.status_code == 423, second.text
    first.go()
    thread.join(60)
    assert first.response is not None and first.response.status_code == 204, first.error
    stored = download(c, c.b, first.response.headers["Wirelab-File-Url"])
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


def _sigkill_mid_upload_and_resume_through_b(c: Cluster) -> None:
    data = os.urandom(14 * MiB)
    location = create_upload(c, c.a, len(data))
    assert patch(c, c.a, location, 0, data[: 6 * MiB]).status_code == 204
    stalled = StalledBody(data[6 * MiB : 12 * MiB], data[12 * MiB :])
    thread = stalled.run(lambda body: patch(c, c.a, location, 6 * MiB, body))
    stalled.wait_sent()
    c.a.kill()  # mid-PATCH, holding the upload's lease
    stalled.go()
    thread.join(60)
    assert stalled.response is None and stalled.error is not None

    assert httpx.get(f"{c.b.url}/healthz").status_code == 200  # B kept serving
    offset = offset_of(c, c.b, location)
    assert 6 * MiB <= offset < 12 * MiB
    digest = hashlib.sha256(data).hexdigest()
    # B waits for the dead server's lease to run out (LOCK_TTL), then takes the upload.
    r = patch(c, c.b, location, offset, data[offset:], **{"Wirelab-Sha256": digest})
    assert r.status_code == 204, r.text
    stored = download(c, c.b, r.headers["Wirelab-File-Url"])
    assert len(stored) == len(data) and hashlib.sha256(stored).hexdigest() == digest


def test_two_servers_and_two_workers_share_one_deployment(
    cluster: Cluster, source: MediaServer
) -> None:
    _long_poll_wakes_across_servers(cluster)
    _media_job_runs_on_a_worker(cluster, source)
    _concurrent_appends_never_mix(cluster)
    _sigkill_mid_upload_and_resume_through_b(cluster)
