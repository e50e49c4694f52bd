"""Removing a user deletes everything addressed to it and the uploads it was sending: a
new user of the same name starts with an empty inbox, and the bytes leave the disk."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.relay import RelayLimits

from .conftest import Relay, add_users
from .test_relay_tus import TUS, _create, _patch


def _send(client: httpx.Client, to: str, name: str, data: bytes) -> httpx.Response:
    return client.post(
        "/v1/relay/files",
        params={"to": to, "name": name},
        content=data,
        headers={"Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
    )


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _store(relay: Relay) -> list[str]:
    """The options of ``wirelab users`` for the server's own store (SQLite or not)."""
    config = relay.server.app.state.config
    return ["--data-dir", str(config.data_dir), "--database-url", config.metadata_url]


def test_reused_name_starts_empty(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(relay_limits=RelayLimits(sweep_interval=0.2))
    data = b"for the old bob"
    sent = _send(relay.alice, "bob", "old.txt", data)
    assert sent.status_code == 201, sent.text
    to_bob = _create(relay.alice, b"partial to bob")  # an upload in progress to bob
    assert _patch(relay.alice, to_bob, 0, b"partial").status_code == 204
    from_bob = _create(relay.bob, b"bob sends this", to="alice")  # bob's own upload
    assert _patch(relay.bob, from_bob, 0, b"bob").status_code == 204
    batch = relay.alice.post(
        "/v1/relay/batches", json={"to": "bob", "files": [{"name": "b", "size": 3}]}
    )
    assert batch.status_code == 201, batch.text
    data_dir = relay.server.app.state.config.data_dir
    result = CliRunner().invoke(main, ["users", "remove", "bob", *_store(relay)])
    assert result.exit_code == 0, result.output

    token = add_users(relay.server, "bob")["bob"]
    new_bob = {"Authorization": f"Bearer {token}"}
    inbox = relay.alice.get("/v1/relay/inbox", headers=new_bob)
    assert inbox.status_code == 200 and inbox.json()["files"] == []
    old_url = sent.json()["url"]
    assert relay.alice.get(old_url, headers=new_bob).status_code == 404
    assert relay.alice.post("/v1/relay/inbox/next", headers=new_bob).status_code == 204
    # The uploads to and from the old bob are gone for their senders.
    assert relay.alice.head(to_bob, headers=TUS).status_code == 404
    assert _patch(relay.alice, to_bob, 7, b" to bob").status_code == 404
    assert relay.alice.head(from_bob, headers={**TUS, **new_bob}).status_code == 404
    batch_id = batch.json()["id"]
    assert relay.alice.get(f"/v1/relay/batches/{batch_id}").status_code == 404

    # The sweeper removes the bytes: no blob and no partial upload stays on disk.
    store = data_dir / "relay"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        _files_under(store / "blobs") or _files_under(store / "uploads")
    ):
        time.sleep(0.05)
    assert _files_under(store / "blobs") == []
    assert _files_under(store / "uploads") == []
    # The new bob can receive as anyone.
    again = _send(relay.alice, "bob", "new.txt", b"hi")
    assert again.status_code == 201
    (doc,) = relay.alice.get("/v1/relay/inbox", headers=new_bob).json()["files"]
    assert doc["name"] == "new.txt"


@pytest.mark.distributed
def test_files_the_removed_user_sent_stay_with_their_recipients(relay: Relay) -> None:
    data = b"from bob"
    sent = _send(relay.bob, "alice", "keep.txt", data)
    assert sent.status_code == 201
    result = CliRunner().invoke(main, ["users", "remove", "bob", *_store(relay)])
    assert result.exit_code == 0, result.output
    assert relay.alice.get(sent.json()["url"]).content == data
