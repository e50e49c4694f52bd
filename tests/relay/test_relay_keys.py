"""Public keys for end-to-end encryption, and the opaque ``encryption`` descriptor."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os

import httpx
import pytest

from wirelab.db import connect

from .conftest import Relay, add_users

TUS = {"Tus-Resumable": "1.0.0"}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.distributed
def test_put_replace_and_get_a_key(relay: Relay) -> None:
    assert relay.alice.get("/v1/relay/keys/bob").status_code == 404  # no key yet
    first, second = os.urandom(32), os.urandom(32)
    r = relay.bob.put("/v1/relay/keys/me", json={"algorithm": "x25519", "public_key": _b64(first)})
    assert r.status_code == 200
    assert r.json() == {"name": "bob", "algorithm": "x25519", "public_key": _b64(first)}
    assert relay.alice.get("/v1/relay/keys/bob").json()["public_key"] == _b64(first)
    relay.bob.put("/v1/relay/keys/me", json={"algorithm": "x25519", "public_key": _b64(second)})
    assert relay.alice.get("/v1/relay/keys/bob").json() == {
        "name": "bob",
        "algorithm": "x25519",
        "public_key": _b64(second),
    }
    assert relay.alice.get("/v1/relay/keys/nobody").status_code == 404
    assert relay.alice.get("/v1/relay/keys/carol").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"algorithm": "ed25519", "public_key": _b64(bytes(32))},
        {"algorithm": "x25519", "public_key": _b64(bytes(31))},
        {"algorithm": "x25519", "public_key": "not base64!"},
        {"algorithm": "x25519"},
    ],
)
def test_invalid_key_is_422(relay: Relay, body: dict[str, str]) -> None:
    assert relay.bob.put("/v1/relay/keys/me", json=body).status_code == 422
    assert relay.alice.get("/v1/relay/keys/bob").status_code == 404


def test_keys_need_a_token(relay: Relay) -> None:
    with httpx.Client(base_url=relay.server.url) as anonymous:
        assert anonymous.get("/v1/relay/keys/bob").status_code == 401
        body = {"algorithm": "x25519", "public_key": _b64(bytes(32))}
        assert anonymous.put("/v1/relay/keys/me", json=body).status_code == 401


def test_a_new_user_of_the_same_name_has_no_key(relay: Relay) -> None:
    relay.bob.put("/v1/relay/keys/me", json={"algorithm": "x25519", "public_key": _b64(bytes(32))})
    url = relay.server.app.state.config.metadata_url

    async def remove() -> None:
        async with await connect(url) as db:
            await db.users.remove_user("bob")

    asyncio.run(remove())
    add_users(relay.server, "bob")
    assert relay.alice.get("/v1/relay/keys/bob").status_code == 404


def test_encryption_descriptor_travels_from_tus_metadata(relay: Relay) -> None:
    def create(value: str) -> int:
        meta = {"filename": "e", "to": "bob", "encryption": value}
        header = ",".join(f"{k} {_b64(v.encode())}" for k, v in meta.items())
        r = relay.alice.post(
            "/v1/relay/uploads",
            headers={**TUS, "Upload-Length": "0", "Upload-Metadata": header},
        )
        return r.status_code

    assert create("x" * 2049) == 400
    assert create("tab\there") == 400
    assert create("age v1 recipient=bob " + "k" * 2000) == 201
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["encryption"].startswith("age v1 recipient=bob ")
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "plain"},
        content=b"p",
        headers={"Wirelab-Sha256": hashlib.sha256(b"p").hexdigest()},
    )
    assert r.json()["encryption"] is None and r.json()["batch"] is None
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "sealed", "encryption": "x25519-chacha20 v1"},
        content=b"s",
        headers={"Wirelab-Sha256": hashlib.sha256(b"s").hexdigest()},
    )
    assert r.status_code == 201 and r.json()["encryption"] == "x25519-chacha20 v1"
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "bad", "encryption": "\u00e9"},
        content=b"s",
        headers={"Wirelab-Sha256": hashlib.sha256(b"s").hexdigest()},
    )
    assert r.status_code == 422
