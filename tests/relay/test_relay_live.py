"""Live pass-through: a waiting recipient receives an upload while it is being sent."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from wirelab import TruncatedError
from wirelab.client import ReceivedFile, RelayClient
from wirelab.client._relay_receive import PART_SUFFIX

from .conftest import NEEDS_LIVE_READS, Relay

TUS = {"Tus-Resumable": "1.0.0"}
_MIB = 1024 * 1024

pytestmark = NEEDS_LIVE_READS


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _create(relay: Relay, data: bytes, name: str) -> str:
    meta = f"filename {_b64(name)},to {_b64('bob')},sha256 {_b64(hashlib.sha256(data).hexdigest())}"
    r = relay.alice.post(
        "/v1/relay/uploads",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
    )
    assert r.status_code == 201, r.text
    return r.headers["location"]


def _patch(relay: Relay, url: str, offset: int, chunk: bytes) -> None:
    r = relay.alice.patch(
        url,
        content=chunk,
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 204, r.text


def _wait_for_partial(out: Path, size: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        parts = list(out.glob(f"*{PART_SUFFIX}")) if out.exists() else []
        if parts and parts[0].stat().st_size >= size:
            return
        time.sleep(0.01)
    pytest.fail(f"the receiver never had {size} bytes of the live upload")


@pytest.mark.distributed
def test_waiting_recipient_gets_the_bytes_while_they_upload(relay: Relay, tmp_path: Path) -> None:
    data = os.urandom(3 * _MIB + 7)
    out = tmp_path / "out"
    results: list[ReceivedFile] = []
    with RelayClient(relay.server.url, token=relay.tokens["bob"]) as bob:
        waiting = threading.Thread(
            target=lambda: results.extend(bob.receive(out, wait=30)), daemon=True
        )
        waiting.start()
        # Whether the long-poll reaches the server before or after the upload is created,
        # it finds the upload in progress (creating one also wakes waiting requests).
        url = _create(relay, data, "live.bin")
        _patch(relay, url, 0, data[:_MIB])
        # The upload is a third done and the sender is idle: the receiver already has it.
        _wait_for_partial(out, _MIB)
        assert not (out / "live.bin").exists()  # not written before it is verified
        _patch(relay, url, _MIB, data[_MIB:])
        waiting.join(30)
        assert not waiting.is_alive()
    [got] = results
    assert got.path.read_bytes() == data
    assert got.acknowledged and got.live
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []  # stored, then acknowledged


def test_a_cancelled_live_upload_writes_nothing(relay: Relay, tmp_path: Path) -> None:
    data = os.urandom(2 * _MIB)
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def receive() -> None:
        with RelayClient(relay.server.url, token=relay.tokens["bob"], timeout=2) as bob:
            try:
                bob.receive(out, wait=20)
            except TruncatedError as exc:
                errors.append(exc)

    waiting = threading.Thread(target=receive, daemon=True)
    waiting.start()
    url = _create(relay, data, "gone.bin")
    _patch(relay, url, 0, data[:_MIB])
    _wait_for_partial(out, _MIB)
    assert relay.alice.delete(url, headers=TUS).status_code == 204  # the sender gives up
    waiting.join(30)
    assert not waiting.is_alive()
    assert len(errors) == 1 and "did not complete" in str(errors[0])
    assert not (out / "gone.bin").exists()


def test_live_is_only_offered_to_a_waiting_request(relay: Relay) -> None:
    data = os.urandom(1000)
    url = _create(relay, data, "pending.bin")
    assert relay.bob.post("/v1/relay/inbox/next").status_code == 204  # not stored yet
    offered = relay.bob.post("/v1/relay/inbox/next", params={"live": "true"})
    assert offered.status_code == 200
    doc = offered.json()
    assert doc["live"] is True and doc["url"] == f"/v1/relay/live/{doc['id']}"
    assert (doc["name"], doc["size"], doc["sender"]) == ("pending.bin", 1000, "alice")
    again = relay.bob.post("/v1/relay/inbox/next", params={"live": "true"})
    assert again.status_code == 204  # one live receiver per upload
    assert relay.carol.get(doc["url"]).status_code == 404  # not carol's
    _patch(relay, url, 0, data)
    assert relay.bob.get(doc["url"]).content == data  # after completion: the stored bytes
