"""Per-user inbox quotas: bytes (507) and files (429), counting files already there plus
the reservations of uploads in progress; direct sends (sized and chunked) and tus."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from wirelab.db import UNCHANGED, connect
from wirelab.relay import RelayLimits

from .conftest import Relay

TUS = {"Tus-Resumable": "1.0.0"}


def _send(client: httpx.Client, data: bytes | Iterator[bytes], digest: str) -> httpx.Response:
    return client.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "f"},
        content=data,
        headers={"Wirelab-Sha256": digest},
    )


def _sized(client: httpx.Client, data: bytes) -> httpx.Response:
    return _send(client, data, hashlib.sha256(data).hexdigest())


def _create(client: httpx.Client, length: int) -> httpx.Response:
    meta = f"filename {base64.b64encode(b'u').decode()},to {base64.b64encode(b'bob').decode()}"
    return client.post(
        "/v1/relay/uploads", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta}
    )


def _names(relay: Relay) -> int:
    return len(relay.bob.get("/v1/relay/inbox").json()["files"])


def _quota_relay(factory: Callable[..., Relay], **limits: int) -> Relay:
    return factory(relay_limits=RelayLimits(**limits))


def test_bytes_quota_is_507_before_the_body(relay_factory: Callable[..., Relay]) -> None:
    relay = _quota_relay(relay_factory, quota_bytes=100)
    assert _sized(relay.alice, b"a" * 60).status_code == 201
    r = _sized(relay.alice, b"b" * 41)
    assert r.status_code == 507
    detail = r.json()["detail"]
    assert "60 bytes used" in detail and "41 requested" in detail and "limit 100" in detail
    assert _sized(relay.alice, b"c" * 40).status_code == 201  # exactly the limit
    assert _names(relay) == 2
    data_dir: Path = relay.server.app.state.config.data_dir
    assert list((data_dir / "relay" / "uploads").glob("*")) == []


def test_files_quota_is_429(relay_factory: Callable[..., Relay]) -> None:
    relay = _quota_relay(relay_factory, quota_files=2)
    for data in (b"1", b"2"):
        assert _sized(relay.alice, data).status_code == 201
    r = _sized(relay.carol, b"3")
    assert r.status_code == 429 and "2 files used" in r.json()["detail"]
    assert _create(relay.alice, 1).status_code == 429
    (first, _) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert relay.bob.delete(first["url"]).status_code == 204  # acknowledging frees room
    assert _sized(relay.alice, b"3").status_code == 201


def test_chunked_send_is_stopped_while_streaming(relay_factory: Callable[..., Relay]) -> None:
    relay = _quota_relay(relay_factory, quota_bytes=100_000)

    def body() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 20_000

    r = _send(relay.alice, body(), "0" * 64)
    assert r.status_code == 507 and "limit 100000" in r.json()["detail"]
    assert _names(relay) == 0
    data_dir: Path = relay.server.app.state.config.data_dir
    assert list((data_dir / "relay" / "uploads").glob("*")) == []


@pytest.mark.distributed
def test_tus_uploads_in_progress_reserve_their_length(relay_factory: Callable[..., Relay]) -> None:
    relay = _quota_relay(relay_factory, quota_bytes=100)
    r = _create(relay.alice, 60)
    assert r.status_code == 201
    url = r.headers["Location"]
    assert _create(relay.carol, 41).status_code == 507  # 60 reserved + 41 > 100
    assert _sized(relay.carol, b"z" * 41).status_code == 507
    assert _sized(relay.carol, b"z" * 40).status_code == 201
    assert relay.alice.delete(url, headers=TUS).status_code == 204  # frees the reservation
    assert _create(relay.alice, 60).status_code == 201


def test_completion_turns_the_reservation_into_the_file(
    relay_factory: Callable[..., Relay],
) -> None:
    relay = _quota_relay(relay_factory, quota_bytes=10)
    data = b"0123456789"
    url = _create(relay.alice, len(data)).headers["Location"]
    r = relay.alice.patch(
        url,
        content=data,
        headers={
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
            "Wirelab-Sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert r.status_code == 204 and _names(relay) == 1
    assert _sized(relay.alice, b"!").status_code == 507  # the file counts now
    assert _create(relay.alice, 0).status_code == 201  # 0 bytes still fit


@pytest.mark.distributed
def test_concurrent_chunked_sender_cannot_overshoot(relay_factory: Callable[..., Relay]) -> None:
    """A chunked send sees room at its start; a tus upload reserves that room meanwhile:
    the send is refused when its file row would be written, not stored over the quota."""
    relay = _quota_relay(relay_factory, quota_bytes=100)
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"a" * 25
        release.wait(30)
        yield b"a" * 25

    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            _send(relay.alice, body(), hashlib.sha256(b"a" * 50).hexdigest())
        )
    )
    sender.start()
    uploads = relay.server.app.state.config.data_dir / "relay" / "uploads"
    deadline = time.monotonic() + 20
    while not list(uploads.glob("*.data")) and time.monotonic() < deadline:
        time.sleep(0.01)  # the send has reserved its key once its partial upload exists
    assert _create(relay.carol, 60).status_code == 201
    release.set()
    sender.join(30)
    (r,) = answers
    assert r.status_code == 507 and "limit 100" in r.json()["detail"]
    assert _names(relay) == 0


def test_per_user_quota_overrides_the_default(relay: Relay) -> None:
    url = relay.server.app.state.config.metadata_url

    async def set_bytes(value: int | None) -> None:
        async with await connect(url) as db:
            await db.users.set_quota("bob", quota_bytes=value, quota_files=UNCHANGED)

    asyncio.run(set_bytes(5))
    assert _sized(relay.alice, b"123456").status_code == 507
    assert _sized(relay.alice, b"12345").status_code == 201
    asyncio.run(set_bytes(None))  # back to the server default (50 GiB)
    assert _sized(relay.alice, b"123456").status_code == 201


def test_expired_files_do_not_count(relay_factory: Callable[..., Relay]) -> None:
    relay = _quota_relay(relay_factory, quota_files=1)
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "short", "ttl": "0.3"},
        content=b"x",
        headers={"Wirelab-Sha256": hashlib.sha256(b"x").hexdigest()},
    )
    assert r.status_code == 201
    assert _sized(relay.alice, b"y").status_code == 429
    deadline = time.monotonic() + 5
    while _names(relay) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sized(relay.alice, b"y").status_code == 201
