"""tus 1.0.0 resumable uploads: protocol conformance, completion, tuspy, restart."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from wirelab.relay import RelayLimits
from wirelab.relay._tus import parse_metadata

from ._serve_process import ServeProcess as _Serve
from ._serve_process import add_users
from .conftest import Relay, stored_files

if TYPE_CHECKING:
    from tusclient.client import TusClient

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _meta(data: bytes, name: str = "report.bin", to: str = "bob", **extra: str) -> str:
    pairs = {"filename": name, "to": to, "sha256": hashlib.sha256(data).hexdigest(), **extra}
    return ",".join(f"{k} {_b64(v)}" for k, v in pairs.items())


def _create(client: httpx.Client, data: bytes, **extra: str) -> str:
    r = client.post(
        "/v1/relay/uploads",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(data, **extra)},
    )
    assert r.status_code == 201, r.text
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert r.headers["Upload-Expires"].endswith(" GMT")
    location = r.headers["Location"]
    assert location.startswith("/v1/relay/uploads/")
    return location


def _patch(client: httpx.Client, url: str, offset: int, chunk: bytes, **h: str) -> httpx.Response:
    return client.patch(url, content=chunk, headers={**PATCH, "Upload-Offset": str(offset), **h})


def _offset(client: httpx.Client, url: str) -> int:
    r = client.head(url, headers=TUS)
    assert r.status_code == 200
    assert r.headers["Tus-Resumable"] == "1.0.0"
    return int(r.headers["Upload-Offset"])


def test_parse_metadata() -> None:
    assert parse_metadata("") == {}
    assert parse_metadata(None) == {}
    assert parse_metadata(f"filename {_b64('a b.txt')},flag, to {_b64('bob')}") == {
        "filename": "a b.txt",
        "flag": "",
        "to": "bob",
    }
    for bad in ("a b c", "k !!!", f"k {_b64('x')},k {_b64('y')}"):
        with pytest.raises(ValueError, match="Upload-Metadata"):
            parse_metadata(bad)


def test_options_discovery(relay: Relay) -> None:
    r = relay.alice.options("/v1/relay/uploads")
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "checksum",
        "expiration",
        "termination",
    }
    assert int(r.headers["Tus-Max-Size"]) == RelayLimits().max_file_size
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


@pytest.mark.distributed
def test_upload_in_chunks_appears_in_inbox(relay: Relay) -> None:
    data = os.urandom(300_000)
    url = _create(relay.alice, data, note="hi", filetype="text/plain")
    assert _offset(relay.alice, url) == 0
    offset = 0
    for start in range(0, len(data), 100_000):
        r = _patch(relay.alice, url, offset, data[start : start + 100_000])
        assert r.status_code == 204, r.text
        assert r.headers["Tus-Resumable"] == "1.0.0"
        assert r.headers["Upload-Expires"].endswith(" GMT")
        offset = int(r.headers["Upload-Offset"])
        assert offset == start + len(data[start : start + 100_000])
    file_url = r.headers["Wirelab-File-Url"]
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["url"] == file_url
    assert (doc["name"], doc["sender"], doc["note"], doc["media_type"]) == (
        "report.bin",
        "alice",
        "hi",
        "text/plain",
    )
    assert doc["sha256"] == hashlib.sha256(data).hexdigest() and doc["size"] == len(data)
    assert relay.bob.get(file_url).content == data
    r = relay.alice.head(url, headers=TUS)  # finished: still answerable to its owner
    assert r.status_code == 200 and r.headers["Wirelab-File-Url"] == file_url
    assert r.headers["Upload-Offset"] == r.headers["Upload-Length"] == str(len(data))
    assert relay.bob.head(url, headers=TUS).status_code == 404


def test_wrong_offset_version_and_content_type(relay: Relay) -> None:
    url = _create(relay.alice, b"0123456789")
    assert _patch(relay.alice, url, 0, b"01234").status_code == 204
    r = _patch(relay.alice, url, 2, b"23456")
    assert r.status_code == 409 and r.headers["Upload-Offset"] == "5"
    r = relay.alice.head(url, headers={"Tus-Resumable": "0.2.2"})
    assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
    assert relay.alice.post("/v1/relay/uploads", headers={"Upload-Length": "1"}).status_code == 412
    r = relay.alice.patch(
        url, content=b"5", headers={**TUS, "Upload-Offset": "5", "Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert _offset(relay.alice, url) == 5
    assert _patch(relay.alice, url, 5, b"56789abc").status_code == 413  # past Upload-Length


def test_checksum(relay: Relay) -> None:
    data = b"hello tus"
    url = _create(relay.alice, data)

    def digest(algorithm: str, chunk: bytes) -> str:
        return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()}"

    r = _patch(relay.alice, url, 0, b"hello", **{"Upload-Checksum": digest("sha1", b"HELLO")})
    assert r.status_code == 460
    assert _offset(relay.alice, url) == 0  # the mismatching chunk was not appended
    r = _patch(relay.alice, url, 0, b"hello", **{"Upload-Checksum": digest("md5", b"hello")})
    assert r.status_code == 400
    r = _patch(relay.alice, url, 0, b"hello", **{"Upload-Checksum": digest("sha1", b"hello")})
    assert r.status_code == 204
    r = _patch(relay.alice, url, 5, b" tus", **{"Upload-Checksum": digest("sha256", b" tus")})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert len(relay.bob.get("/v1/relay/inbox").json()["files"]) == 1


def test_digest_mismatch_at_completion_keeps_nothing(relay: Relay) -> None:
    url = _create(relay.alice, b"expected bytes")
    r = _patch(relay.alice, url, 0, b"other  bytes!!")
    assert r.status_code == 422 and "SHA-256 mismatch" in r.json()["detail"]
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []
    assert relay.alice.head(url, headers=TUS).status_code == 404


def test_termination(relay: Relay) -> None:
    url = _create(relay.alice, b"abcdef")
    assert _patch(relay.alice, url, 0, b"abc").status_code == 204
    r = relay.alice.delete(url, headers=TUS)
    assert r.status_code == 204 and r.headers["Tus-Resumable"] == "1.0.0"
    assert relay.alice.head(url, headers=TUS).status_code == 404
    assert _patch(relay.alice, url, 3, b"def").status_code == 404
    data_dir: Path = relay.server.app.state.config.data_dir
    assert list((data_dir / "relay" / "uploads").glob("*")) == []


def test_creation_errors(relay: Relay) -> None:
    def post(length: str, metadata: str) -> httpx.Response:
        return relay.alice.post(
            "/v1/relay/uploads",
            headers={**TUS, "Upload-Length": length, "Upload-Metadata": metadata},
        )

    r = post("5", "")  # an empty Upload-Metadata is parsed: only the keys are missing
    assert r.status_code == 400 and "'to'" in r.json()["detail"]
    assert post("5", f"to {_b64('bob')}").status_code == 400  # no filename
    assert post("5", "filename !!!").status_code == 400
    assert post("5", _meta(b"x", to="nobody")).status_code == 404
    assert post("-1", _meta(b"x")).status_code == 400
    assert post("5", _meta(b"x", sha256="12")).status_code == 400


def test_too_large_at_creation(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(relay_limits=RelayLimits(max_file_size=100))
    r = relay.alice.post(
        "/v1/relay/uploads",
        headers={**TUS, "Upload-Length": "101", "Upload-Metadata": _meta(b"x")},
    )
    assert r.status_code == 413


def test_auth_and_ownership(relay: Relay) -> None:
    url = _create(relay.alice, b"secret")
    anonymous = httpx.Client(base_url=relay.server.url)
    with anonymous:
        r = anonymous.head(url, headers=TUS)
        assert r.status_code == 401 and r.headers["Tus-Resumable"] == "1.0.0"
        assert anonymous.options("/v1/relay/uploads").status_code == 204  # discovery is public
    assert relay.bob.head(url, headers=TUS).status_code == 404
    assert _patch(relay.bob, url, 0, b"secret").status_code == 404
    assert relay.bob.delete(url, headers=TUS).status_code == 404
    assert _offset(relay.alice, url) == 0


@pytest.mark.distributed
def test_expired_uploads_are_gone_and_swept(relay_factory: Callable[..., Relay]) -> None:
    # The expiry leaves room for the first PATCH on a slow machine (the distributed
    # configuration's requests go to PostgreSQL and S3).
    relay = relay_factory(relay_limits=RelayLimits(upload_expiry=2.0, sweep_interval=0.2))
    url = _create(relay.alice, b"late")
    assert _patch(relay.alice, url, 0, b"la").status_code == 204
    time.sleep(2.1)
    assert relay.alice.head(url, headers=TUS).status_code in (404, 410)
    assert _patch(relay.alice, url, 2, b"te").status_code in (404, 410)
    # The sweep forgets the upload (404, no longer 410) and removes its bytes, from the
    # data folder or the bucket (an unfinished S3 multipart upload counts).
    deadline = time.monotonic() + 10
    while relay.alice.head(url, headers=TUS).status_code != 404:
        assert time.monotonic() < deadline, "the expired upload was not swept"
        time.sleep(0.05)
    while stored_files(relay, "uploads") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_files(relay, "uploads") == []


def tuspy_client(relay: Relay) -> TusClient:
    """A tuspy client of alice on the relay's tus endpoint."""
    from tusclient.client import TusClient

    return TusClient(
        relay.server.url + "/v1/relay/uploads",
        headers={"Authorization": f"Bearer {relay.tokens['alice']}"},
    )


def test_tuspy_client_upload(relay: Relay, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    client = tuspy_client(relay)
    metadata = {"filename": "photo.jpg", "to": "bob", "sha256": hashlib.sha256(data).hexdigest()}
    with path.open("rb") as stream:
        uploader = client.uploader(
            file_stream=stream, chunk_size=8192, metadata=metadata, upload_checksum=True
        )
        uploader.upload(stop_at=20_000)  # interrupted after a few PATCHes
    location = str(uploader.url)  # tuspy resolved the Location against the client's URL
    assert location.startswith(relay.server.url + "/v1/relay/uploads/")
    assert _offset(relay.alice, location.removeprefix(relay.server.url)) >= 20_000
    with path.open("rb") as stream:
        resumed = client.uploader(
            file_stream=stream,
            chunk_size=8192,
            metadata=metadata,
            url=location,
            upload_checksum=True,
        )
        resumed.upload()
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["name"] == "photo.jpg" and doc["sha256"] == metadata["sha256"]
    assert relay.bob.get(doc["url"]).content == data


@pytest.mark.slow
def test_upload_survives_sigkill_and_resumes(tmp_path: Path) -> None:
    """SIGKILL of ``wirelab serve`` mid-PATCH: after a restart HEAD gives the durable
    offset (at least what was acknowledged), the client resumes and the file appears."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    tokens = add_users(data_dir, "alice", "bob")
    auth = {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}
    data = os.urandom(3_000_000)
    acknowledged = 1_000_000

    server = _Serve(data_dir)
    try:
        alice = httpx.Client(base_url=server.url, headers=auth["alice"], timeout=30)
        with alice:
            url = _create(alice, data)
            assert _patch(alice, url, 0, data[:acknowledged]).status_code == 204
        stop = threading.Event()

        def body() -> Iterator[bytes]:
            for start in range(acknowledged, len(data), 65536):
                if stop.is_set():
                    return
                yield data[start : start + 65536]
                time.sleep(0.01)

        def upload() -> None:
            with contextlib.suppress(httpx.TransportError):
                httpx.patch(
                    server.url + url,
                    content=body(),
                    headers={**auth["alice"], **PATCH, "Upload-Offset": str(acknowledged)},
                    timeout=30,
                )

        uploader = threading.Thread(target=upload)
        uploader.start()
        partial = data_dir / "relay" / "uploads" / f"{url.rsplit('/', 1)[1]}.data"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size > acknowledged + 256 * 1024:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the second PATCH never reached the server's store")
        server.kill()
        stop.set()
        uploader.join(30)
    finally:
        server.kill()

    server = _Serve(data_dir)
    try:
        alice = httpx.Client(base_url=server.url, headers=auth["alice"], timeout=30)
        bob = httpx.Client(base_url=server.url, headers=auth["bob"], timeout=30)
        with alice, bob:
            assert bob.get("/v1/relay/inbox").json()["files"] == []
            offset = _offset(alice, url)
            assert acknowledged <= offset < len(data)
            assert _patch(alice, url, offset, data[offset:]).status_code == 204
            (doc,) = bob.get("/v1/relay/inbox").json()["files"]
            assert doc["sha256"] == hashlib.sha256(data).hexdigest()
            assert bob.get(doc["url"]).content == data
    finally:
        server.kill()
