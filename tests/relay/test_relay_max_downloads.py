"""Maximum downloads: a GET counts once the file's last byte was sent; then 410."""

from __future__ import annotations

import base64
import hashlib
import os

import httpx
import pytest

from .conftest import Relay

TUS = {"Tus-Resumable": "1.0.0"}


def _send(relay: Relay, data: bytes, **params: str) -> dict[str, object]:
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "f.bin", **params},
        content=data,
        headers={"Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 201, r.text
    doc: dict[str, object] = r.json()
    return doc


def _listed(relay: Relay) -> dict[str, object]:
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert isinstance(doc, dict)
    return doc


@pytest.mark.distributed
def test_full_and_final_range_downloads_count_then_410(relay: Relay) -> None:
    data = os.urandom(10_000)
    doc = _send(relay, data, max_downloads="2")
    assert (doc["downloads"], doc["max_downloads"]) == (0, 2)
    url = str(doc["url"])
    assert relay.bob.get(url, headers={"Range": "bytes=0-99"}).status_code == 206
    assert relay.bob.head(url).status_code == 200
    assert _listed(relay)["downloads"] == 0  # neither a HEAD nor a range short of the end
    assert relay.bob.get(url).content == data
    assert _listed(relay)["downloads"] == 1
    r = relay.bob.get(url, headers={"Range": "bytes=9000-"})
    assert r.status_code == 206 and r.content == data[9000:]
    for answer in (relay.bob.get(url), relay.bob.head(url)):
        assert answer.status_code == 410
    assert relay.bob.get(url).json()["detail"] == "download limit reached"
    listed = _listed(relay)  # still listed until acknowledged
    assert (listed["downloads"], listed["max_downloads"]) == (2, 2)
    assert relay.bob.delete(url).status_code == 204
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []


def test_unlimited_files_count_downloads_too(relay: Relay) -> None:
    doc = _send(relay, b"")
    assert doc["max_downloads"] is None
    for _ in range(3):
        assert relay.bob.get(str(doc["url"])).status_code == 200
    assert _listed(relay)["downloads"] == 3


def test_an_interrupted_download_does_not_count(relay: Relay) -> None:
    # Far more than loopback socket buffers hold: the server cannot have sent it all.
    data = os.urandom(64 * 1024 * 1024)
    doc = _send(relay, data, max_downloads="1")
    with relay.bob.stream("GET", str(doc["url"])) as r:
        assert r.status_code == 200
        next(r.iter_bytes())
    assert _listed(relay)["downloads"] == 0
    assert relay.bob.get(str(doc["url"])).content == data
    assert relay.bob.get(str(doc["url"])).status_code == 410


def test_tus_metadata_max_downloads(relay: Relay) -> None:
    def create(value: str) -> httpx.Response:
        meta = {"filename": "t", "to": "bob", "max_downloads": value}
        return relay.alice.post(
            "/v1/relay/uploads",
            headers={
                **TUS,
                "Upload-Length": "0",
                "Upload-Metadata": ",".join(
                    f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items()
                ),
            },
        )

    for bad in ("0", "-1", "x"):
        r = create(bad)
        assert r.status_code == 400 and "max_downloads" in r.json()["detail"]
    assert create("1").status_code == 201
    doc = _listed(relay)
    assert doc["max_downloads"] == 1
    assert relay.bob.get(str(doc["url"])).status_code == 200
    assert relay.bob.get(str(doc["url"])).status_code == 410


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_invalid_max_downloads_query_is_422(relay: Relay, value: str) -> None:
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "f", "max_downloads": value},
        content=b"x",
        headers={"Wirelab-Sha256": hashlib.sha256(b"x").hexdigest()},
    )
    assert r.status_code == 422
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []


def test_next_skips_a_file_at_its_limit_so_it_blocks_nobody(relay: Relay) -> None:
    spent = _send(relay, b"once", max_downloads="1")
    assert relay.bob.get(str(spent["url"])).content == b"once"
    assert relay.bob.post("/v1/relay/inbox/next").status_code == 204  # nothing to offer
    later = _send(relay, b"after")
    taken = relay.bob.post("/v1/relay/inbox/next")
    assert taken.status_code == 200 and taken.json()["id"] == later["id"]
    listed = [f["id"] for f in relay.bob.get("/v1/relay/inbox").json()["files"]]
    assert listed == [spent["id"], later["id"]]  # still listed until acknowledged or expired
