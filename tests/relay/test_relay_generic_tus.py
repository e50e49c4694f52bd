"""Generic tus clients: no ``sha256`` metadata (the server computes the digest),
``X-HTTP-Method-Override``, ``OPTIONS`` without a token, and CORS for browser pages."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.relay import parse_origins

from .conftest import Relay
from .test_relay_tus import TUS, _b64, _offset, tuspy_client

ORIGIN = "https://app.example"


def _create_plain(relay: Relay, length: int, **headers: str) -> str:
    """An upload as a generic client creates it: filename and recipient, no digest."""
    meta = f"filename {_b64('plain.bin')},to {_b64('bob')}"
    r = relay.alice.post(
        "/v1/relay/uploads",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta, **headers},
    )
    assert r.status_code == 201, r.text
    return str(r.headers["Location"])


@pytest.mark.distributed
def test_tuspy_without_sha256_metadata(relay: Relay, tmp_path: Path) -> None:
    data = os.urandom(40_000)
    path = tmp_path / "generic.bin"
    path.write_bytes(data)
    with path.open("rb") as stream:
        uploader = tuspy_client(relay).uploader(
            file_stream=stream, chunk_size=8192, metadata={"filename": "generic.bin", "to": "bob"}
        )
        uploader.upload()  # before: the last PATCH was refused (400, no digest known)
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    assert relay.bob.get(doc["url"]).content == data


def test_x_http_method_override(relay: Relay) -> None:
    data = b"overridden"
    url = _create_plain(relay, len(data))
    r = relay.alice.post(
        url,
        content=data[:4],
        headers={
            **TUS,
            "X-HTTP-Method-Override": "PATCH",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 204, r.text
    assert _offset(relay.alice, url) == 4
    r = relay.alice.post(url, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert r.status_code == 204
    assert relay.alice.head(url, headers=TUS).status_code == 404
    # Only PATCH and DELETE, only on tus uploads: anything else stays a POST.
    other = _create_plain(relay, 3)
    r = relay.alice.post(other, headers={**TUS, "X-HTTP-Method-Override": "GET"})
    assert r.status_code == 405


def test_options_needs_no_token(relay: Relay) -> None:
    r = relay.alice.options("/v1/relay/uploads", headers={"Authorization": ""})
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert "creation" in r.headers["Tus-Extension"]
    r = relay.alice.options("/v1/relay/uploads/abc", headers={"Authorization": ""})
    assert r.status_code == 204 and r.headers["Tus-Resumable"] == "1.0.0"


def test_no_cors_headers_by_default(relay: Relay) -> None:
    r = relay.alice.get("/v1/relay/inbox", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


def test_cors_preflight_and_exposed_tus_headers(relay_factory: Callable[..., Relay]) -> None:
    relay = relay_factory(cors_origins=(ORIGIN,))
    preflight = relay.alice.options(
        "/v1/relay/uploads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length,"
            "upload-metadata",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "upload-metadata" in allowed and "authorization" in allowed
    # The answer of the creation carries the headers a browser page may read.
    url = _create_plain(relay, 3, Origin=ORIGIN)
    r = relay.alice.head(url, headers={**TUS, "Origin": ORIGIN})
    assert r.headers["access-control-allow-origin"] == ORIGIN
    exposed = r.headers["access-control-expose-headers"].lower()
    assert {"location", "upload-offset", "tus-resumable"} <= set(exposed.split(", "))
    other = relay.alice.options(
        "/v1/relay/uploads",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_parse_origins() -> None:
    assert parse_origins(None) == ()
    assert parse_origins(" https://a.example:8443/, http://b ,*") == (
        "https://a.example:8443",
        "http://b",
        "*",
    )
    for bad in ("a.example", "ftp://a", "https://a/path", "https://u@a"):
        with pytest.raises(ValueError, match="not a CORS origin"):
            parse_origins(bad)


def test_serve_refuses_a_bad_cors_origin(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--data-dir", str(tmp_path), "--cors-origins", "not-an-origin"]
    )
    assert result.exit_code != 0
    assert "not a CORS origin" in result.output
