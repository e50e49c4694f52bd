"""Fixtures of the relay tests: a live server with two users, alice and bob."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _server_setup import ServerSetup
from _server_setup import stored_files as stored_files_of
from wirelab.client import RelayClient
from wirelab.db import connect
from wirelab.relay import RelayLimits
from wirelab.server import ServerConfig
from wirelab.stream import StreamLimits
from wirelab.testing._live import LiveServer, live_server


@dataclass
class Relay:
    """A live server and an authenticated client per user."""

    server: LiveServer
    tokens: dict[str, str]
    clients: dict[str, httpx.Client]

    @property
    def alice(self) -> httpx.Client:
        return self.clients["alice"]

    @property
    def bob(self) -> httpx.Client:
        return self.clients["bob"]

    @property
    def carol(self) -> httpx.Client:
        return self.clients["carol"]


NEEDS_LIVE_READS = pytest.mark.live_reads
"""For tests of live pass-through, which S3 storage does not offer: their ``distributed``
cases are not collected (tests/conftest.py), and with ``WIRELAB_TEST_STORAGE=s3`` they are
skipped with that reason (:func:`live_reads_need_a_folder`)."""

LIVE_READS_ON_S3 = (
    "live pass-through is not offered on S3 storage (docs/server.md): "
    "test_relay_s3.py checks the 501 that says so"
)


@pytest.fixture(autouse=True)
def live_reads_need_a_folder(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``live_reads`` when its servers keep their blobs on S3."""
    if request.node.get_closest_marker("live_reads") is None:
        return
    setup: ServerSetup = request.getfixturevalue("server_setup")
    if setup.on_s3:
        pytest.skip(LIVE_READS_ON_S3)


def stored_files(relay: Relay, under: str = "") -> list[str]:
    """What the relay's storage holds under *under* (``""``: everything, ``"blobs"``: one
    entry per committed file), in a data folder or an S3 bucket alike (see
    :func:`_server_setup.stored_files`)."""
    return stored_files_of(relay.server.app.state.config, f"relay/{under}")


def add_users(server: LiveServer, *names: str) -> dict[str, str]:
    """Create users through the db API, in the server's own store; return their tokens."""
    url = server.app.state.config.metadata_url

    async def run() -> dict[str, str]:
        async with await connect(url) as db:
            return {name: (await db.users.add_user(name))[1] for name in names}

    return asyncio.run(run())


@pytest.fixture
def relay_factory(
    server_factory: Callable[..., LiveServer],
) -> Iterator[Callable[..., Relay]]:
    """``relay_factory(relay_limits=...)``: a server with users alice, bob and carol."""
    clients: list[httpx.Client] = []

    def make(**settings: Any) -> Relay:
        server = server_factory(**settings)
        tokens = add_users(server, "alice", "bob", "carol")
        made = {
            name: httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            for name, token in tokens.items()
        }
        clients.extend(made.values())
        return Relay(server, tokens, made)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def relay(relay_factory: Callable[..., Relay]) -> Relay:
    """A server with default relay limits and users alice, bob and carol."""
    return relay_factory()


@pytest.fixture
def client(relay: Relay, tmp_path: Path) -> Iterator[Callable[[str], RelayClient]]:
    """``client(name)``: a ``RelayClient`` of that user (own state folder and key file
    location under ``tmp_path``), closed at teardown."""
    made: list[RelayClient] = []

    def make(name: str) -> RelayClient:
        c = RelayClient(
            relay.server.url,
            token=relay.tokens[name],
            state_dir=tmp_path / "state" / name,
            key_file=tmp_path / "keys" / f"{name}.key",
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def module_relay(
    tmp_path_factory: pytest.TempPathFactory, server_setup: ServerSetup
) -> Iterator[Relay]:
    """One server per test module (users alice, bob and carol), for modules whose tests
    only read or add state; small stream and relay limits so that no request is long."""
    config = ServerConfig(
        data_dir=tmp_path_factory.mktemp("module-server-data"),
        stream_limits=StreamLimits(
            max_count=20, max_file_size=64 * 1024, max_total_bytes=256 * 1024, max_duration=0.3
        ),
        relay_limits=RelayLimits(max_wait=0.2, max_file_size=1024 * 1024),
        **server_setup.new_server(),
    )
    with live_server(config) as server:
        tokens = add_users(server, "alice", "bob", "carol")
        clients = {
            name: httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for name, token in tokens.items()
        }
        try:
            yield Relay(server, tokens, clients)
        finally:
            for client in clients.values():
                client.close()
