"""``GET /v1/relay/live/{id}`` of a finished upload: it honours ``max_downloads`` and
answers at once (404/410) when the upload ended and its file is gone, never polls."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pytest

from .conftest import NEEDS_LIVE_READS, Relay
from .test_relay_tus import TUS, _create, _patch

pytestmark = NEEDS_LIVE_READS


def _upload(relay: Relay, data: bytes, **meta: str) -> str:
    """A completed tus upload from alice to bob; its id."""
    url = _create(relay.alice, data, **meta)
    assert _patch(relay.alice, url, 0, data).status_code == 204
    return url.rsplit("/", 1)[1]


def _downloads(relay: Relay) -> list[int]:
    return [f["downloads"] for f in relay.bob.get("/v1/relay/inbox").json()["files"]]


def test_finished_and_acknowledged_upload_is_404_at_once(relay: Relay) -> None:
    upload_id = _upload(relay, b"done and gone")
    assert relay.bob.delete(f"/v1/relay/files/{upload_id}").status_code == 204
    # Before: the server polled for the upload's expiry (a day): a read timeout here.
    r = relay.bob.get(f"/v1/relay/live/{upload_id}", timeout=5)
    assert r.status_code == 404
    assert "no longer in your inbox" in r.json()["detail"]


@pytest.mark.distributed
def test_live_download_counts_towards_max_downloads(relay: Relay) -> None:
    data = b"once only"
    upload_id = _upload(relay, data, max_downloads="1")
    r = relay.bob.get(f"/v1/relay/live/{upload_id}", timeout=5)
    assert r.status_code == 200 and r.content == data
    again = relay.bob.get(f"/v1/relay/live/{upload_id}", timeout=5)
    assert again.status_code == 410
    assert again.json()["detail"] == "download limit reached"
    assert relay.bob.get(f"/v1/relay/files/{upload_id}").status_code == 410


def test_live_stream_in_progress_counts_and_is_counted_once_committed(relay: Relay) -> None:
    data = b"x" * 100_000
    url = _create(relay.alice, data, max_downloads="1")
    upload_id = url.rsplit("/", 1)[1]
    assert _patch(relay.alice, url, 0, data[:1000]).status_code == 204
    got: list[bytes] = []
    with relay.bob.stream("GET", f"/v1/relay/live/{upload_id}", timeout=10) as first:
        assert first.status_code == 200
        # A second live receiver while the first one streams would exceed the limit.
        second = relay.bob.get(f"/v1/relay/live/{upload_id}", timeout=5)
        assert second.status_code == 410
        sender = threading.Thread(target=_patch, args=(relay.alice, url, 1000, data[1000:]))
        sender.start()
        got.append(first.read())
        sender.join()
    assert got == [data]
    # The stream counts its download once the file is committed, maybe after the client
    # has read the last byte (Content-Length ends the body for the client).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _downloads(relay) != [1]:
        time.sleep(0.02)
    assert _downloads(relay) == [1]
    assert relay.bob.get(f"/v1/relay/files/{upload_id}").status_code == 410


def test_terminated_upload_ends_the_live_stream_at_once(relay: Relay) -> None:
    data = b"y" * 10_000
    url = _create(relay.alice, data)
    upload_id = url.rsplit("/", 1)[1]
    assert _patch(relay.alice, url, 0, data[:100]).status_code == 204
    with relay.bob.stream("GET", f"/v1/relay/live/{upload_id}", timeout=10) as live:
        assert live.status_code == 200
        assert relay.alice.delete(url, headers=TUS).status_code == 204
        try:
            body = live.read()
        except httpx.RemoteProtocolError:  # the body ended short of Content-Length
            body = b""
    assert len(body) < len(data)
    assert hashlib.sha256(body).hexdigest() != hashlib.sha256(data).hexdigest()
