"""Fixtures of the media tests: test media made once per session, served on 127.0.0.1,
and live servers (allowing 127.0.0.0/8 as a source network) with users alice and bob."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from _server_setup import ServerSetup
from wirelab.db import connect
from wirelab.media import MediaSettings, parse_networks
from wirelab.media.testing import FPS, MediaServer, TestMedia, make_test_media, media_server
from wirelab.testing._live import LiveServer

from ._workers import WorkerProcess, worker_for

LOOPBACK = parse_networks("127.0.0.0/8")
FRAME_TOLERANCE = 1 / FPS + 1e-9
"""One frame of the test media (plus float rounding): the accuracy of exact cuts."""
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="session")
def test_media(tmp_path_factory: pytest.TempPathFactory) -> TestMedia:
    """30 s of 320x240 test media (MP4 and HLS), rendered once per session."""
    return make_test_media(tmp_path_factory.mktemp("test-media"))


@pytest.fixture(scope="session")
def source(test_media: TestMedia) -> Iterator[MediaServer]:
    """The test media served over HTTP on 127.0.0.1."""
    with media_server(test_media.root) as server:
        yield server


def add_users(server: LiveServer, *names: str) -> dict[str, str]:
    """Create users in the server's store; return their tokens."""
    url = server.app.state.config.metadata_url

    async def run() -> dict[str, str]:
        async with await connect(url) as db:
            return {name: (await db.users.add_user(name))[1] for name in names}

    return asyncio.run(run())


@dataclass
class Media:
    """A live server with media enabled and a client per user."""

    server: LiveServer
    workers: list[WorkerProcess] = field(default_factory=list)
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def alice(self) -> httpx.Client:
        return self.clients["alice"]

    @property
    def bob(self) -> httpx.Client:
        return self.clients["bob"]

    @property
    def data_dir(self) -> Path:
        path: Path = self.server.app.state.config.data_dir
        return path

    def work_files(self) -> list[Path]:
        """Files of job attempts left in the work folders (the server's, the workers')."""
        folders = [self.data_dir / "media-work", self.data_dir / "media-workers"]
        return [p for f in folders for p in f.rglob("*") if p.is_file() and p.suffix != ".lock"]


def wait_job(
    client: httpx.Client, job_id: str, timeout: float = 120, states: tuple[str, ...] = TERMINAL
) -> tuple[dict[str, Any], list[float]]:
    """Poll the job until its state is in ``states``; return it and the progress seen."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/media/jobs/{job_id}")
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        seen.append(doc["progress"])
        if doc["state"] in states:
            return doc, seen
        assert time.monotonic() < deadline, f"job still {doc['state']}: {doc}"
        time.sleep(0.05)


RUNNERS = pytest.mark.parametrize("runner", ["embedded", "celery"])
"""Run a test against both job runners: in the server, and on a ``wirelab worker``."""


@pytest.fixture
def runner() -> str:
    """Where media jobs run: ``embedded`` (the default), or ``celery`` (a real ``wirelab
    worker`` process on the machine's Redis); tests choose both with :data:`RUNNERS`.
    On the distributed configuration jobs always run on Celery."""
    return "embedded"


@pytest.fixture
def media_workers() -> Iterator[dict[str, WorkerProcess]]:
    """``{server url: its wirelab worker}`` of the servers :func:`server_factory` started
    with a jobs URL; every worker is stopped at teardown."""
    workers: dict[str, WorkerProcess] = {}
    yield workers
    for worker in workers.values():
        worker.stop()


@pytest.fixture
def server_factory(
    server_factory: Callable[..., LiveServer], media_workers: dict[str, WorkerProcess]
) -> Callable[..., LiveServer]:
    """The servers of the media tests (tests/conftest.py's ``server_factory``): one whose
    media jobs go to Celery (a ``jobs_url``: ``runner`` celery, or the distributed
    configuration) gets a real ``wirelab worker`` of its own, ready when this returns."""

    def make(**settings: Any) -> LiveServer:
        server = server_factory(**settings)
        config = server.app.state.config
        if config.jobs_url:
            media_workers[server.url] = worker_for(config)
        return server

    return make


@pytest.fixture
def media_factory(
    server_factory: Callable[..., LiveServer],
    server_setup: ServerSetup,
    runner: str,
    request: pytest.FixtureRequest,
    media_workers: dict[str, WorkerProcess],
) -> Iterator[Callable[..., Media]]:
    """``media_factory(**media_settings)``: a server whose sources may be on loopback,
    with a ``wirelab worker`` running its jobs when they go to Celery (``runner`` is
    ``celery``, or the configuration is distributed)."""
    made: list[Media] = []
    workers: list[WorkerProcess] = []

    def make(storage_url: str | None = None, **settings: Any) -> Media:
        media = replace(MediaSettings(allow_network=LOOPBACK, sweep_interval=0.2), **settings)
        jobs: dict[str, Any] = {}
        if runner == "celery" and not server_setup.distributed:
            url, prefix = request.getfixturevalue("redis_scratch")
            jobs = {"jobs_url": url, "jobs_queue": prefix.rstrip(":")}
        if storage_url:
            jobs["storage_url"] = storage_url
        server = server_factory(media=media, **jobs)
        if server.url in media_workers:
            workers.append(media_workers[server.url])
        tokens = add_users(server, "alice", "bob")
        env = Media(server, workers)
        for name, token in tokens.items():
            env.clients[name] = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
        made.append(env)
        return env

    yield make
    for worker in workers:
        worker.stop()
    for env in made:
        for client in env.clients.values():
            client.close()


@pytest.fixture
def media(media_factory: Callable[..., Media]) -> Media:
    """A media server with default settings (sources on 127.0.0.0/8 allowed)."""
    return media_factory()


def ffmpeg_processes(ancestor: int) -> dict[int, int]:
    """``{pid: process group}`` of the ffmpeg processes descending from ``ancestor``."""
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid], groups[pid], names[pid] = int(fields[1]), int(fields[2]), name
    found: dict[int, int] = {}
    for pid, name in names.items():
        if not name.startswith("ffmpeg"):
            continue
        cursor = parents.get(pid, 0)
        while cursor > 1 and cursor != ancestor:
            cursor = parents.get(cursor, 0)
        if cursor == ancestor:
            found[pid] = groups[pid]
    return found


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
