"""Batches: one delivery of several files, invisible until the last one completes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from wirelab.relay import RelayLimits

from ._serve_process import ServeProcess as _Serve
from ._serve_process import add_users
from .conftest import Relay, stored_files

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _batch(client: httpx.Client, files: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post("/v1/relay/batches", json={"to": "bob", "files": files, **extra})


def _created(client: httpx.Client, files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    r = _batch(client, files, **extra)
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    assert r.headers["Location"] == f"/v1/relay/batches/{doc['id']}"
    return doc


def _put(client: httpx.Client, url: str, data: bytes, **h: str) -> httpx.Response:
    return client.patch(url, content=data, headers={**PATCH, "Upload-Offset": "0", **h})


def _inbox(relay: Relay) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = relay.bob.get("/v1/relay/inbox").json()["files"]
    return files


@pytest.mark.distributed
def test_batch_is_delivered_whole_in_manifest_order(relay: Relay) -> None:
    a, c = os.urandom(5000), b"third"
    doc = _created(
        relay.alice,
        [
            {"name": "a/1.bin", "size": len(a)},
            {"name": "empty.txt", "size": 0, "media_type": "text/plain"},
            {"name": "c.txt", "size": len(c), "sha256": _sha(c), "encryption": "age-x25519 v1"},
        ],
        note="three",
        max_downloads=2,
    )
    assert doc["to"] == "bob"
    assert [(f["index"], f["name"], f["size"]) for f in doc["files"]] == [
        (0, "a_1.bin", 5000),
        (1, "empty.txt", 0),
        (2, "c.txt", 5),
    ]
    batch_url = f"/v1/relay/batches/{doc['id']}"
    state = relay.alice.get(batch_url).json()
    assert state["complete"] is False
    assert [(f["offset"], f["complete"]) for f in state["files"]] == [
        (0, False),
        (0, True),
        (0, False),
    ]
    assert relay.bob.get(batch_url).status_code == 404  # not delivered yet
    r = _put(relay.alice, doc["files"][2]["upload_url"], c)
    assert r.status_code == 204 and "Wirelab-File-Url" not in r.headers
    assert _inbox(relay) == []
    head = relay.alice.head(doc["files"][2]["upload_url"], headers=TUS)
    assert head.headers["Upload-Offset"] == "5" and "Wirelab-File-Url" not in head.headers
    r = _put(relay.alice, doc["files"][0]["upload_url"], a, **{"Wirelab-Sha256": _sha(a)})
    assert r.status_code == 204 and "Wirelab-File-Url" in r.headers
    files = _inbox(relay)
    assert [f["name"] for f in files] == ["a_1.bin", "empty.txt", "c.txt"]
    for i, f in enumerate(files):
        assert f["batch"] == {"id": doc["id"], "index": i, "count": 3}
        assert (f["note"], f["max_downloads"], f["sender"]) == ("three", 2, "alice")
    assert [f["encryption"] for f in files] == [None, None, "age-x25519 v1"]
    assert files[1]["media_type"] == "text/plain"
    assert relay.bob.get(files[0]["url"]).content == a
    manifest = relay.bob.get(batch_url).json()
    assert (manifest["id"], manifest["sender"], manifest["note"]) == (doc["id"], "alice", "three")
    assert [f["id"] for f in manifest["files"]] == [f["id"] for f in files]
    assert relay.alice.get(batch_url).json()["complete"] is True
    assert relay.carol.get(batch_url).status_code == 404


def test_batch_files_are_adjacent_in_fifo_order(relay: Relay) -> None:
    def single(name: str) -> None:
        data = name.encode()
        r = relay.alice.post(
            "/v1/relay/files",
            params={"to": "bob", "name": name},
            content=data,
            headers={"Wirelab-Sha256": _sha(data)},
        )
        assert r.status_code == 201

    doc = _created(relay.alice, [{"name": "b0", "size": 2}, {"name": "b1", "size": 2}])
    single("before")
    assert (
        _put(
            relay.alice, doc["files"][1]["upload_url"], b"11", **{"Wirelab-Sha256": _sha(b"11")}
        ).status_code
        == 204
    )
    single("between")
    assert (
        _put(
            relay.alice, doc["files"][0]["upload_url"], b"00", **{"Wirelab-Sha256": _sha(b"00")}
        ).status_code
        == 204
    )
    single("after")
    assert [f["name"] for f in _inbox(relay)] == ["before", "between", "b0", "b1", "after"]


def test_all_empty_batch_is_delivered_at_creation(relay: Relay) -> None:
    doc = _created(relay.alice, [{"name": "x", "size": 0}, {"name": "y", "size": 0}])
    assert [f["name"] for f in _inbox(relay)] == ["x", "y"]
    assert relay.alice.get(f"/v1/relay/batches/{doc['id']}").json()["complete"] is True


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        (
            [{"name": "a", "size": 1}, {"name": "b", "size": 1}, {"name": "a..", "size": 1}],
            "files[0]",
        ),
        ([], "at least 1"),
        ([{"name": f"f{i}", "size": 0} for i in range(1001)], "at most 1000"),
        ([{"name": "a", "size": 1, "sha256": "xyz"}], "pattern"),
        ([{"name": "a", "size": -1}], "greater than or equal"),
        ([{"name": "a", "size": 1, "encryption": "caf\u00e9"}], "printable ASCII"),
        ([{"name": "a", "size": 1, "media_type": "nope"}], "media type"),
    ],
)
def test_invalid_manifest_is_422(relay: Relay, files: list[dict[str, Any]], fragment: str) -> None:
    r = _batch(relay.alice, files)
    assert r.status_code == 422
    assert fragment in str(r.json()["detail"])
    assert _inbox(relay) == []


def test_duplicate_name_names_the_index(relay: Relay) -> None:
    r = _batch(
        relay.alice, [{"name": "a", "size": 1}, {"name": "b", "size": 1}, {"name": "a.", "size": 1}]
    )
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "files", 2, "name"] and "files[0]" in error["msg"]


def test_other_creation_errors(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(relay_limits=RelayLimits(max_file_size=100, max_ttl=60))
    assert _batch(relay.alice, [{"name": "a", "size": 1}], to="nobody").status_code == 404
    r = _batch(relay.alice, [{"name": "a", "size": 1}, {"name": "b", "size": 101}])
    assert r.status_code == 413 and "files[1]" in r.json()["detail"]
    assert _batch(relay.alice, [{"name": "a", "size": 1}], ttl=61).status_code == 422
    r = _batch(relay.alice, [{"name": "a", "size": 0, "sha256": _sha(b"x")}])
    assert r.status_code == 422 and "files[0]" in r.json()["detail"]
    data_dir: Path = relay.server.app.state.config.data_dir
    assert list((data_dir / "relay" / "uploads").glob("*")) == []


def test_batch_quota_is_checked_on_the_sum(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(relay_limits=RelayLimits(quota_bytes=100, quota_files=3))
    r = _batch(relay.alice, [{"name": "a", "size": 60}, {"name": "b", "size": 41}])
    assert r.status_code == 507 and "101 requested" in r.json()["detail"]
    r = _batch(relay.alice, [{"name": f"f{i}", "size": 1} for i in range(4)])
    assert r.status_code == 429
    _created(relay.alice, [{"name": "a", "size": 60}, {"name": "b", "size": 40}])  # fits
    assert _batch(relay.carol, [{"name": "c", "size": 1}]).status_code == 507  # reserved


def test_cancel_before_delivery(relay: Relay) -> None:
    doc = _created(relay.alice, [{"name": "a", "size": 4}, {"name": "b", "size": 3}])
    url0, url1 = (f["upload_url"] for f in doc["files"])
    assert _put(relay.alice, url1, b"bbb", **{"Wirelab-Sha256": _sha(b"bbb")}).status_code == 204
    r = relay.alice.delete(url0, headers=TUS)  # a batch's upload alone: no
    assert r.status_code == 409 and "/v1/relay/batches/" in r.json()["detail"]
    batch_url = f"/v1/relay/batches/{doc['id']}"
    assert relay.bob.delete(batch_url).status_code == 404
    assert relay.alice.delete(batch_url).status_code == 204
    assert relay.alice.get(batch_url).status_code == 404
    assert relay.alice.head(url0, headers=TUS).status_code == 404
    data_dir: Path = relay.server.app.state.config.data_dir
    assert list((data_dir / "relay" / "uploads").glob("*")) == []
    assert [p for p in (data_dir / "relay" / "blobs").rglob("*") if p.is_file()] == []
    done = _created(relay.alice, [{"name": "z", "size": 0}])
    r = relay.alice.delete(f"/v1/relay/batches/{done['id']}")
    assert r.status_code == 409  # delivered: acknowledge its files instead


def test_digest_mismatch_resets_the_batch_upload(relay: Relay) -> None:
    doc = _created(relay.alice, [{"name": "a", "size": 3, "sha256": _sha(b"abc")}])
    url = doc["files"][0]["upload_url"]
    r = _put(relay.alice, url, b"xyz")
    assert r.status_code == 422 and "reset to offset 0" in r.json()["detail"]
    assert relay.alice.head(url, headers=TUS).headers["Upload-Offset"] == "0"
    assert _put(relay.alice, url, b"abc").status_code == 204
    assert [f["name"] for f in _inbox(relay)] == ["a"]


@pytest.mark.distributed
def test_expired_incomplete_batch_is_swept(relay_factory: Callable[..., Relay]) -> None:
    # The expiry leaves room for the set-up below on a slow machine (the distributed
    # configuration's requests go to PostgreSQL and S3): the first look must come first.
    relay = relay_factory(relay_limits=RelayLimits(upload_expiry=3.0, sweep_interval=0.2))
    doc = _created(relay.alice, [{"name": "a", "size": 2}, {"name": "b", "size": 2}])
    assert (
        _put(
            relay.alice, doc["files"][0]["upload_url"], b"aa", **{"Wirelab-Sha256": _sha(b"aa")}
        ).status_code
        == 204
    )

    def leftovers() -> list[str]:
        return stored_files(relay)

    assert leftovers()  # the committed blob and the other partial upload
    deadline = time.monotonic() + 30
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []
    assert relay.alice.get(f"/v1/relay/batches/{doc['id']}").status_code == 404
    assert _inbox(relay) == []


@pytest.mark.slow
def test_committed_batch_upload_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    auth = {
        n: {"Authorization": f"Bearer {t}"} for n, t in add_users(data_dir, "alice", "bob").items()
    }
    server = _Serve(data_dir)
    try:
        with httpx.Client(base_url=server.url, headers=auth["alice"]) as alice:
            doc = _created(alice, [{"name": "a", "size": 1}, {"name": "b", "size": 1}])
            assert (
                _put(
                    alice, doc["files"][0]["upload_url"], b"A", **{"Wirelab-Sha256": _sha(b"A")}
                ).status_code
                == 204
            )
    finally:
        server.kill()
    server = _Serve(data_dir)
    try:
        alice = httpx.Client(base_url=server.url, headers=auth["alice"])
        bob = httpx.Client(base_url=server.url, headers=auth["bob"])
        with alice, bob:
            state = alice.get(f"/v1/relay/batches/{doc['id']}").json()
            assert [f["complete"] for f in state["files"]] == [True, False]
            r = _put(alice, doc["files"][1]["upload_url"], b"B", **{"Wirelab-Sha256": _sha(b"B")})
            assert r.status_code == 204
            files = bob.get("/v1/relay/inbox").json()["files"]
            assert [bob.get(f["url"]).content for f in files] == [b"A", b"B"]
    finally:
        server.kill()
