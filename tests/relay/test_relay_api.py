"""The relay's HTTP API against a real server on 127.0.0.1 (alice, bob, carol)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from wirelab.relay import RelayLimits

from .conftest import Relay, stored_files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def send(
    client: httpx.Client,
    data: bytes,
    *,
    to: str = "bob",
    name: str = "file.bin",
    digest: str | None = None,
    **params: Any,
) -> httpx.Response:
    return client.post(
        "/v1/relay/files",
        params={"to": to, "name": name, **params},
        content=data,
        headers={"Wirelab-Sha256": digest or sha(data)},
    )


def inbox(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/v1/relay/inbox")
    assert response.status_code == 200
    files: list[dict[str, Any]] = response.json()["files"]
    return files


@pytest.mark.distributed
def test_send_inbox_download_ack(relay: Relay) -> None:
    data = bytes(range(256)) * 40
    sent = send(relay.alice, data, name="report.bin", note="for you")
    assert sent.status_code == 201, sent.text
    doc = sent.json()
    assert sent.headers["location"] == f"/v1/relay/files/{doc['id']}"
    assert doc["sender"] == "alice"
    assert doc["name"] == "report.bin"
    assert doc["size"] == len(data)
    assert doc["sha256"] == sha(data)
    assert doc["note"] == "for you"
    listed = inbox(relay.bob)
    assert [f["id"] for f in listed] == [doc["id"]]
    assert set(listed[0]) >= {"id", "sender", "name", "size", "sha256", "created_at"}
    assert listed[0]["expires_at"] > listed[0]["created_at"]

    url = f"/v1/relay/files/{doc['id']}"
    full = relay.bob.get(url)
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["content-length"] == str(len(data))
    assert full.headers["etag"] == f'"{sha(data)}"'
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-disposition"] == (
        "attachment; filename=\"report.bin\"; filename*=UTF-8''report.bin"
    )

    head = relay.bob.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.content == b""
    for name in ("etag", "accept-ranges", "content-disposition", "content-type"):
        assert head.headers[name] == full.headers[name], name

    head_part = relay.bob.head(url, headers={"Range": "bytes=100-199"})
    assert head_part.status_code == 206
    assert head_part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert head_part.headers["content-length"] == "100"
    assert head_part.content == b""

    part = relay.bob.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-length"] == "100"

    tail = relay.bob.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == data[-10:]

    rest = relay.bob.get(url, headers={"Range": "bytes=10000-"})
    assert rest.status_code == 206
    assert rest.content == data[10000:]

    outside = relay.bob.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(data)}"
    assert outside.json()["detail"].startswith("Range: ")

    stale = relay.bob.get(url, headers={"Range": "bytes=0-9", "If-Range": '"0000"'})
    assert stale.status_code == 200
    assert stale.content == data

    assert relay.bob.delete(url).status_code == 204
    assert inbox(relay.bob) == []
    assert relay.bob.get(url).status_code == 404
    assert relay.bob.delete(url).status_code == 404


def test_inbox_is_fifo_and_per_recipient(relay: Relay) -> None:
    ids = [send(relay.alice, f"file {i}".encode(), name=f"{i}.txt").json()["id"] for i in range(5)]
    other = send(relay.alice, b"for carol", to="carol").json()["id"]
    assert [f["id"] for f in inbox(relay.bob)] == ids
    assert [f["id"] for f in inbox(relay.clients["carol"])] == [other]
    assert inbox(relay.alice) == []


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer wl_nope"])
def test_missing_or_wrong_token_is_401(relay: Relay, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=relay.server.url, headers=headers) as anonymous:
        for method, path in [
            ("GET", "/v1/relay/inbox"),
            ("POST", "/v1/relay/files?to=bob&name=x"),
            ("POST", "/v1/relay/inbox/next"),
            ("GET", "/v1/relay/files/abc"),
            ("DELETE", "/v1/relay/files/abc"),
        ]:
            response = anonymous.request(method, path, content=b"x")
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"].startswith('Bearer realm="wirelab"')


def test_unknown_token_is_401_with_invalid_token(relay: Relay) -> None:
    token = relay.tokens["alice"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = httpx.get(
        relay.server.url + "/v1/relay/inbox", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_other_users_file_is_404(relay: Relay) -> None:
    file_id = send(relay.alice, b"secret").json()["id"]
    carol = relay.clients["carol"]
    url = f"/v1/relay/files/{file_id}"
    assert carol.get(url).status_code == 404
    assert carol.head(url).status_code == 404
    assert carol.delete(url).status_code == 404
    assert relay.alice.get(url).status_code == 404  # the sender cannot read it either
    assert relay.bob.get(url).content == b"secret"


def test_unknown_recipient_is_404(relay: Relay) -> None:
    response = send(relay.alice, b"x", to="nobody")
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


def test_digest_mismatch_is_422_and_nothing_is_stored(relay: Relay) -> None:
    response = send(relay.alice, b"hello", digest=sha(b"other"))
    assert response.status_code == 422
    assert "SHA-256" in response.json()["detail"]
    assert inbox(relay.bob) == []
    assert stored_files(relay) == []  # (a folder keeps its disk reserve: docs/relay.md)


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"to": "bob", "name": "x"}, {}),  # no digest
        ({"to": "bob", "name": "x"}, {"Wirelab-Sha256": "xyz"}),
        ({"to": "bob"}, {"Wirelab-Sha256": sha(b"x")}),  # no name
        ({"name": "x"}, {"Wirelab-Sha256": sha(b"x")}),  # no recipient
        ({"to": "bob", "name": "x", "ttl": "0"}, {"Wirelab-Sha256": sha(b"x")}),
        ({"to": "bob", "name": "x", "ttl": "1e12"}, {"Wirelab-Sha256": sha(b"x")}),
        ({"to": "bob", "name": "x"}, {"Wirelab-Sha256": sha(b"x"), "Content-Type": "bad"}),
    ],
)
def test_invalid_send_parameters_are_422(
    relay: Relay, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = relay.alice.post("/v1/relay/files", params=params, content=b"x", headers=headers)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert inbox(relay.bob) == []


def test_too_large_with_content_length_is_413(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(relay_limits=RelayLimits(max_file_size=1000))
    assert send(relay.alice, b"x" * 1000).status_code == 201
    response = send(relay.alice, b"x" * 1001)
    assert response.status_code == 413
    assert "1000" in response.json()["detail"]
    assert len(inbox(relay.bob)) == 1


def test_too_large_without_content_length_is_413(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(relay_limits=RelayLimits(max_file_size=100_000))
    data = b"y" * 300_000

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 10_000):
            yield data[i : i + 10_000]

    try:
        response = relay.alice.post(
            "/v1/relay/files",
            params={"to": "bob", "name": "big"},
            content=chunks(),
            headers={"Wirelab-Sha256": sha(data)},
        )
    except httpx.TransportError:  # the server may close before the body is all sent
        pass
    else:
        assert response.status_code == 413
    assert inbox(relay.bob) == []
    # A chunked upload within the limit works.
    small = data[:50_000]
    ok = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "ok"},
        content=iter([small[:20_000], small[20_000:]]),
        headers={"Wirelab-Sha256": sha(small)},
    )
    assert ok.status_code == 201, ok.text
    assert relay.bob.get(ok.json()["url"]).content == small


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        ("", "unnamed"),
        ("..", "unnamed"),
        ("a\x01b\r\n.txt", "ab.txt"),
        ("日本語のファイル名 ✓.txt", "日本語のファイル名 ✓.txt"),
    ],
)
def test_hostile_and_unicode_file_names(relay: Relay, name: str, stored: str) -> None:
    response = send(relay.alice, b"content", name=name)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == stored
    download = relay.bob.get(response.json()["url"])
    disposition = download.headers["content-disposition"]
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == stored


def test_empty_file(relay: Relay) -> None:
    response = send(relay.alice, b"", name="empty")
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 0
    assert response.json()["sha256"] == sha(b"")
    url = response.json()["url"]
    download = relay.bob.get(url)
    assert download.status_code == 200
    assert download.content == b""
    assert download.headers["content-length"] == "0"
    assert relay.bob.get(url, headers={"Range": "bytes=0-"}).status_code == 416
    assert relay.bob.delete(url).status_code == 204


def test_media_type_and_openapi(relay: Relay) -> None:
    response = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "a.json"},
        content=b"{}",
        headers={"Wirelab-Sha256": sha(b"{}"), "Content-Type": "application/json"},
    )
    assert response.json()["media_type"] == "application/json"
    assert relay.bob.get(response.json()["url"]).headers["content-type"] == "application/json"
    spec = relay.bob.get("/openapi.json").json()
    relay_paths = [p for p in spec["paths"] if p.startswith("/v1/relay/")]
    assert set(relay_paths) == {
        "/v1/relay/files",
        "/v1/relay/inbox",
        "/v1/relay/inbox/next",
        "/v1/relay/inbox/pending",
        "/v1/relay/inbox/pending/{upload_id}",
        "/v1/relay/files/{file_id}",
        "/v1/relay/uploads",
        "/v1/relay/uploads/{upload_id}",
        "/v1/relay/batches",
        "/v1/relay/batches/{batch_id}",
        "/v1/relay/keys/me",
        "/v1/relay/keys/{name}",
        "/v1/relay/live/{upload_id}",
        "/v1/relay/files/{file_id}/lease",
        "/v1/relay/sent",
        "/v1/relay/me",
    }
    for path in relay_paths:
        for operation in spec["paths"][path].values():
            assert operation["tags"] == ["relay"]


@pytest.mark.distributed
def test_expired_files_disappear(relay_factory: Callable[..., Relay]) -> None:
    # inline_max=0: every file is a blob (inline ones: test_relay_inline.py)
    relay = relay_factory(relay_limits=RelayLimits(sweep_interval=0.1, inline_max=0))
    # A ttl long enough for the listing below on a slow store, short enough to wait for.
    short = send(relay.alice, b"short", ttl="3").json()
    long = send(relay.alice, b"long").json()
    assert [f["id"] for f in inbox(relay.bob)] == [short["id"], long["id"]]
    deadline = time.monotonic() + 15
    while len(inbox(relay.bob)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [f["id"] for f in inbox(relay.bob)] == [long["id"]]
    assert relay.bob.get(short["url"]).status_code == 404
    while time.monotonic() < deadline:  # the sweeper removes the blob too
        if len(stored_files(relay, "blobs")) == 1:
            break
        time.sleep(0.05)
    assert len(stored_files(relay, "blobs")) == 1


def test_next_leases_and_redelivers(relay: Relay) -> None:
    first = send(relay.alice, b"one").json()["id"]
    second = send(relay.alice, b"two").json()["id"]
    got = relay.bob.post("/v1/relay/inbox/next", params={"lease": 0.5})
    assert got.status_code == 200
    assert got.json()["id"] == first
    assert got.json()["deliveries"] == 1
    assert got.json()["lease"]["id"]
    # While leased, the next one is the second file; then nothing.
    assert relay.bob.post("/v1/relay/inbox/next", params={"lease": 60}).json()["id"] == second
    assert relay.bob.post("/v1/relay/inbox/next").status_code == 204
    # The first lease ends without an ack: it is delivered again.
    deadline = time.monotonic() + 10
    again = None
    while time.monotonic() < deadline:
        response = relay.bob.post("/v1/relay/inbox/next", params={"lease": 60})
        if response.status_code == 200:
            again = response.json()
            break
        time.sleep(0.05)
    assert again is not None
    assert again["id"] == first
    assert again["deliveries"] == 2
    # Acknowledged files are never delivered again; the listing shows leased files too.
    assert [f["id"] for f in inbox(relay.bob)] == [first, second]
    assert relay.bob.delete(f"/v1/relay/files/{first}").status_code == 204
    assert [f["id"] for f in inbox(relay.bob)] == [second]


def test_long_poll_wakes_up_when_a_lease_ends(relay: Relay) -> None:
    file_id = send(relay.alice, b"x").json()["id"]
    assert relay.bob.post("/v1/relay/inbox/next", params={"lease": 0.3}).json()["id"] == file_id
    started = time.monotonic()
    again = relay.bob.post("/v1/relay/inbox/next", params={"lease": 60, "wait": 20})
    assert again.status_code == 200
    assert again.json()["id"] == file_id
    assert time.monotonic() - started < 10


@pytest.mark.distributed
def test_long_poll_wakes_up_when_a_file_arrives(relay: Relay) -> None:
    result: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        response = relay.bob.post("/v1/relay/inbox/next", params={"wait": 30})
        result["elapsed"] = time.monotonic() - started
        result["response"] = response

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 10
    service = relay.server.app.state.relay_runtime.service
    while not service.coord.listening("inbox:bob") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.coord.listening("inbox:bob")
    sent = send(relay.alice, b"arrived").json()
    waiter.join(30)
    assert not waiter.is_alive()
    assert result["response"].status_code == 200
    assert result["response"].json()["id"] == sent["id"]
    assert result["elapsed"] < 10


def test_long_poll_times_out_with_204(relay: Relay) -> None:
    started = time.monotonic()
    response = relay.bob.post("/v1/relay/inbox/next", params={"wait": 0.3})
    assert response.status_code == 204
    assert 0.25 < time.monotonic() - started < 10


@pytest.mark.parametrize(
    "params", [{"lease": "0"}, {"lease": "1e9"}, {"wait": "-1"}, {"wait": "1e9"}]
)
def test_next_limits_are_422(relay: Relay, params: dict[str, str]) -> None:
    assert relay.bob.post("/v1/relay/inbox/next", params=params).status_code == 422
