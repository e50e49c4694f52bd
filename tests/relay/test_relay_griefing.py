"""A sender cannot deny service to a recipient: an upload holds room in the recipient's
quota only while bytes arrive (``reservation_ttl``), one sender's unfinished uploads are
bounded, and the recipient sees and refuses what is on its way."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from wirelab.relay import RelayLimits

from .conftest import Relay
from .test_relay_batches import _batch
from .test_relay_quota import _create, _sized
from .test_relay_tus import PATCH, TUS


def _patch(client: httpx.Client, url: str, offset: int, data: bytes) -> httpx.Response:
    return client.patch(url, content=data, headers={**PATCH, "Upload-Offset": str(offset)})


def _until_sent(client: httpx.Client, data: bytes) -> httpx.Response:
    """Send ``data`` to bob, retrying while the quota is full (waiting for a lapse)."""
    deadline = time.monotonic() + 15
    while True:
        r = _sized(client, data)
        if r.status_code != 507 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_idle_upload_stops_holding_the_recipients_quota(
    relay_factory: Callable[..., Relay],
) -> None:
    relay = relay_factory(relay_limits=RelayLimits(quota_bytes=1000, reservation_ttl=1.0))
    created = _create(relay.alice, 1000)  # all of bob's quota, and not a byte sent
    assert created.status_code == 201
    url = created.headers["Location"]
    assert _sized(relay.carol, b"c" * 10).status_code == 507  # held while it is fresh
    # Before: held for the upload's whole expiry (a day). Now it lapses without bytes.
    r = _until_sent(relay.carol, b"c" * 10)
    assert r.status_code == 201, r.text
    # The idle upload needs its room again when bytes come: there is none now.
    refused = _patch(relay.alice, url, 0, b"a" * 10)
    assert refused.status_code == 507 and "quota of 'bob'" in refused.json()["detail"]
    assert relay.alice.head(url, headers=TUS).headers["Upload-Offset"] == "0"  # resumable
    assert relay.bob.delete(r.json()["url"]).status_code == 204
    assert _patch(relay.alice, url, 0, b"a" * 10).status_code == 204
    # Holding again: carol's 10 bytes do not fit beside the 1000 reserved.
    assert _sized(relay.carol, b"c" * 10).status_code == 507


def test_a_senders_unfinished_uploads_are_bounded(relay_factory: Callable[..., Relay]) -> None:
    limits = RelayLimits(sender_pending_uploads=2, sender_pending_bytes=100)
    relay = relay_factory(relay_limits=limits)
    first = _create(relay.alice, 60)
    assert first.status_code == 201
    r = _create(relay.alice, 41)
    assert r.status_code == 429 and "unfinished uploads" in r.json()["detail"]
    assert _create(relay.alice, 40).status_code == 201
    r = _create(relay.alice, 0)  # a third upload, even an empty one
    assert r.status_code == 429 and "uploads" in r.json()["detail"]
    files = [{"name": "a", "size": 1}]
    assert _batch(relay.alice, files).status_code == 429
    # Another sender has its own allowance; finishing or cancelling frees the sender's.
    assert _create(relay.carol, 100).status_code == 201
    assert relay.alice.delete(first.headers["Location"], headers=TUS).status_code == 204
    assert _batch(relay.alice, files).status_code == 201


def test_recipient_lists_and_refuses_pending_uploads(
    relay_factory: Callable[..., Relay],
) -> None:
    relay = relay_factory(relay_limits=RelayLimits(quota_bytes=100))
    url = _create(relay.alice, 60).headers["Location"]
    assert _patch(relay.alice, url, 0, b"x" * 25).status_code == 204
    batch = _batch(relay.carol, [{"name": "b1", "size": 20}, {"name": "b2", "size": 20}])
    assert batch.status_code == 201
    listed = relay.bob.get("/v1/relay/inbox/pending")
    assert listed.status_code == 200
    uploads = listed.json()["uploads"]
    assert [(u["sender"], u["size"], u["received"]) for u in uploads] == [
        ("alice", 60, 25),
        ("carol", 20, 0),
        ("carol", 20, 0),
    ]
    assert uploads[1]["batch"]["id"] == batch.json()["id"]
    assert relay.alice.get("/v1/relay/inbox/pending").json()["uploads"] == []
    upload_id = uploads[0]["id"]
    # Only the recipient may refuse; a refused upload is gone for its sender.
    assert relay.carol.delete(f"/v1/relay/inbox/pending/{upload_id}").status_code == 404
    assert relay.bob.delete(f"/v1/relay/inbox/pending/{upload_id}").status_code == 204
    assert relay.alice.head(url, headers=TUS).status_code == 404
    assert relay.bob.delete(f"/v1/relay/inbox/pending/{upload_id}").status_code == 404
    # Refusing a batch's file refuses the batch.
    assert relay.bob.delete(f"/v1/relay/inbox/pending/{uploads[2]['id']}").status_code == 204
    assert relay.carol.get(f"/v1/relay/batches/{batch.json()['id']}").status_code == 404
    assert relay.bob.get("/v1/relay/inbox/pending").json()["uploads"] == []
    # The room they held is free at once.
    assert _sized(relay.carol, b"z" * 100).status_code == 201
    uploads_dir = relay.server.app.state.config.data_dir / "relay" / "uploads"
    assert list(uploads_dir.glob("*")) == []


@pytest.mark.distributed
def test_a_stalled_direct_send_lets_its_reservation_lapse(
    relay_factory: Callable[..., Relay],
) -> None:
    relay = relay_factory(relay_limits=RelayLimits(quota_bytes=1000, reservation_ttl=1.0))
    data = b"s" * 1000
    go_on = threading.Event()
    answers: list[httpx.Response] = []

    def body() -> Iterator[bytes]:
        yield data[:10]
        go_on.wait(30)  # the sender stalls, its Content-Length announced
        yield data[10:]

    def stalled() -> None:
        headers = {"Wirelab-Sha256": hashlib.sha256(data).hexdigest(), "Content-Length": "1000"}
        answers.append(
            relay.alice.post(
                "/v1/relay/files",
                params={"to": "bob", "name": "s"},
                content=body(),
                headers=headers,
            )
        )

    sender = threading.Thread(target=stalled)
    sender.start()
    try:
        r = _until_sent(relay.carol, b"c" * 10)  # 507 while held, 201 once it lapsed
        assert r.status_code == 201, r.text
    finally:
        go_on.set()
        sender.join(30)
    (answer,) = answers
    assert answer.status_code == 507 and "quota of 'bob'" in answer.json()["detail"]
    assert [f["name"] for f in relay.bob.get("/v1/relay/inbox").json()["files"]] == ["f"]
