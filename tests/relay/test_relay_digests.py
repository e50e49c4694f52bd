"""Digest agility of the relay: every digest names its algorithm; BLAKE3 for wirelab's own
client, SHA-256 for generic clients (headers, tus metadata and checksums, ETags)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from blake3 import blake3
from click.testing import CliRunner

from wirelab import IntegrityError
from wirelab.cli import main
from wirelab.client import DuplicateError, RelayClient
from wirelab.client._relay_receive import PART_SUFFIX

from .conftest import Relay

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def b3(data: bytes) -> str:
    return blake3(data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _post(client: httpx.Client, data: bytes, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/relay/files", params={"to": "bob", "name": "f.bin"}, content=data, headers=headers
    )


def _meta(**pairs: str) -> str:
    pairs = {"filename": "f.bin", "to": "bob", **pairs}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def _create(client: httpx.Client, length: int, **meta: str) -> httpx.Response:
    return client.post(
        "/v1/relay/uploads",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": _meta(**meta)},
    )


def _patch(client: httpx.Client, url: str, offset: int, chunk: bytes, **h: str) -> httpx.Response:
    return client.patch(url, content=chunk, headers={**PATCH, "Upload-Offset": str(offset), **h})


# --- direct sends ---------------------------------------------------------------------


@pytest.mark.distributed
def test_direct_send_with_blake3_names_it_everywhere(relay: Relay) -> None:
    data = os.urandom(70_000)
    r = _post(relay.alice, data, **{"Wirelab-Digest": f"blake3={b3(data).upper()}"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert (doc["digest_algorithm"], doc["digest"], doc["sha256"]) == ("blake3", b3(data), None)
    got = relay.bob.get(doc["url"])
    assert got.content == data
    assert got.headers["etag"] == f'"blake3:{b3(data)}"'
    assert got.headers["wirelab-digest"] == f"blake3={b3(data)}"
    assert "wirelab-sha256" not in got.headers and "repr-digest" not in got.headers


def test_generic_sha256_send_keeps_its_etag_and_gets_repr_digest(relay: Relay) -> None:
    data = b"plain old client"
    r = _post(relay.alice, data, **{"Wirelab-Sha256": sha(data)})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert (doc["digest_algorithm"], doc["digest"], doc["sha256"]) == (
        "sha256",
        sha(data),
        sha(data),
    )
    got = relay.bob.get(doc["url"])
    assert got.headers["etag"] == f'"{sha(data)}"'
    assert got.headers["wirelab-sha256"] == sha(data)
    assert got.headers["wirelab-digest"] == f"sha256={sha(data)}"
    raw = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert got.headers["repr-digest"] == f"sha-256=:{raw}:"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Wirelab-Digest or Wirelab-Sha256 needed"),
        ({"Wirelab-Digest": "md5=" + "0" * 64}, "unknown digest algorithm 'md5'"),
        ({"Wirelab-Digest": "blake3"}, "ALGORITHM=HEX"),
        ({"Wirelab-Digest": "blake3=abc"}, "64 hexadecimal digits"),
        ({"Wirelab-Digest": "blake3=" + "0" * 64, "Wirelab-Sha256": "0" * 64}, "disagree"),
    ],
)
def test_bad_digest_headers_are_422_naming_the_problem(
    relay: Relay, headers: dict[str, str], detail: str
) -> None:
    r = _post(relay.alice, b"x", **headers)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["header", "wirelab-digest"] and detail in error["msg"]
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []


def test_blake3_mismatch_is_422_and_nothing_is_stored(relay: Relay) -> None:
    r = _post(relay.alice, b"hello", **{"Wirelab-Digest": f"blake3={b3(b'other')}"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith(f"BLAKE3 mismatch: the body hashes to {b3(b'hello')}")
    assert relay.bob.get("/v1/relay/inbox").json()["files"] == []


def test_if_range_uses_the_algorithm_tagged_etag(relay: Relay) -> None:
    data = os.urandom(10_000)
    doc = _post(relay.alice, data, **{"Wirelab-Digest": f"blake3={b3(data)}"}).json()
    ranged = {"Range": "bytes=100-"}
    same = relay.bob.get(doc["url"], headers={**ranged, "If-Range": f'"blake3:{b3(data)}"'})
    assert (same.status_code, same.content) == (206, data[100:])
    bare = relay.bob.get(doc["url"], headers={**ranged, "If-Range": f'"{b3(data)}"'})
    assert (bare.status_code, bare.content) == (200, data)  # not this file's ETag


def test_sent_finds_files_by_digest_of_their_algorithm(relay: Relay) -> None:
    data = b"dedupe me"
    _post(relay.alice, data, **{"Wirelab-Digest": f"blake3={b3(data)}"}).raise_for_status()
    found = relay.alice.get("/v1/relay/sent", params={"to": "bob", "blake3": b3(data)}).json()
    assert [f["digest"] for f in found["files"]] == [b3(data)]
    other = relay.alice.get("/v1/relay/sent", params={"to": "bob", "sha256": b3(data)}).json()
    assert other["files"] == []  # the same hex in another algorithm is another content
    both = relay.alice.get(
        "/v1/relay/sent", params={"to": "bob", "sha256": "0" * 64, "blake3": "0" * 64}
    )
    assert both.status_code == 422


# --- tus ------------------------------------------------------------------------------


def test_tus_upload_with_blake3_metadata_and_sha1_sha256_checksums(relay: Relay) -> None:
    data = os.urandom(300_000)
    r = _create(relay.alice, len(data), blake3=b3(data))
    assert r.status_code == 201, r.text
    url = r.headers["location"]
    half = len(data) // 2
    for algorithm, start, end in (("sha1", 0, half), ("sha256", half, len(data))):
        chunk = data[start:end]
        digest = base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()
        p = _patch(relay.alice, url, start, chunk, **{"Upload-Checksum": f"{algorithm} {digest}"})
        assert p.status_code == 204, p.text
    [file] = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert (file["digest_algorithm"], file["digest"]) == ("blake3", b3(data))


def test_tus_checksum_mismatch_is_still_460(relay: Relay) -> None:
    url = _create(relay.alice, 4, digest_algorithm="blake3").headers["location"]
    wrong = base64.b64encode(hashlib.sha256(b"nope").digest()).decode()
    p = _patch(relay.alice, url, 0, b"data", **{"Upload-Checksum": f"sha256 {wrong}"})
    assert p.status_code == 460
    assert int(relay.alice.head(url, headers=TUS).headers["upload-offset"]) == 0


def test_tus_deferred_blake3_digest_on_the_completing_patch(relay: Relay) -> None:
    data = b"deferred digest"
    url = _create(relay.alice, len(data), digest_algorithm="blake3").headers["location"]
    wrong = _patch(relay.alice, url, 0, data, **{"Wirelab-Sha256": sha(data)})
    assert wrong.status_code == 422
    assert "this upload's digest is blake3, not sha256" in wrong.json()["detail"]
    ok = _patch(relay.alice, url, 0, data, **{"Wirelab-Digest": f"blake3={b3(data)}"})
    assert ok.status_code == 204, ok.text
    file = relay.bob.get(ok.headers["wirelab-file-url"])
    assert file.headers["etag"] == f'"blake3:{b3(data)}"'


def test_tus_without_any_digest_is_sha256_for_generic_clients(relay: Relay) -> None:
    data = b"a generic tus client"
    url = _create(relay.alice, len(data)).headers["location"]
    done = _patch(relay.alice, url, 0, data)
    assert done.status_code == 204, done.text
    got = relay.bob.get(done.headers["wirelab-file-url"])
    assert got.headers["etag"] == f'"{sha(data)}"' and got.headers["wirelab-sha256"] == sha(data)


@pytest.mark.parametrize(
    ("meta", "detail"),
    [
        ({"sha256": "0" * 64, "blake3": "0" * 64}, "not both"),
        ({"digest_algorithm": "md5"}, "unknown digest algorithm 'md5'"),
        ({"digest_algorithm": "sha256", "blake3": "0" * 64}, "'digest_algorithm' sha256"),
    ],
)
def test_contradictory_tus_digest_metadata_is_400(
    relay: Relay, meta: dict[str, str], detail: str
) -> None:
    r = _create(relay.alice, 3, **meta)
    assert r.status_code == 400 and detail in r.json()["detail"]


def test_empty_blake3_upload_completes_at_creation(relay: Relay) -> None:
    r = _create(relay.alice, 0, blake3=b3(b""))
    assert r.status_code == 201, r.text
    [file] = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert (file["size"], file["digest_algorithm"]) == (0, "blake3")
    assert _create(relay.alice, 0, blake3=sha(b"")).status_code == 422


def test_batch_entries_name_their_algorithm(relay: Relay) -> None:
    a, b = b"first", b"second"
    files = [
        {"name": "a", "size": len(a), "blake3": b3(a)},
        {"name": "b", "size": len(b), "sha256": sha(b)},
    ]
    doc = relay.alice.post("/v1/relay/batches", json={"to": "bob", "files": files}).json()
    for entry, data in zip(doc["files"], (a, b), strict=True):
        assert _patch(relay.alice, entry["upload_url"], 0, data).status_code == 204
    listed = relay.bob.get("/v1/relay/inbox").json()["files"]
    assert [(f["name"], f["digest_algorithm"]) for f in listed] == [
        ("a", "blake3"),
        ("b", "sha256"),
    ]
    bad = [{"name": "c", "size": 1, "blake3": "0" * 64, "sha256": "0" * 64}]
    r = relay.alice.post("/v1/relay/batches", json={"to": "bob", "files": bad})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:3] == ["body", "files", 0]


# --- the client and the CLI -----------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "label"), [("blake3", "BLAKE3"), ("sha256", "SHA-256")])
def test_client_round_trip_and_corrupt_partial_in_each_algorithm(
    client: Callable[[str], RelayClient], tmp_path: Path, algorithm: str, label: str
) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)
    src = tmp_path / "x.bin"
    src.write_bytes(data)
    [sent] = client("alice").send([src], to="bob", digest=algorithm, chunk_size=1 << 20)
    expected = b3(data) if algorithm == "blake3" else sha(data)
    assert (sent.algorithm, sent.digest) == (algorithm, expected)
    bob = client("bob")
    [file] = bob.inbox()
    assert (file.algorithm, file.digest) == (algorithm, expected)
    out = tmp_path / "out"
    out.mkdir()
    (out / f".{file.id}{PART_SUFFIX}").write_bytes(b"\0" * 1000)  # not the file's bytes
    with pytest.raises(IntegrityError, match=f"do not match the {label}"):
        bob.receive(out, lease=0.5)
    [got] = bob.receive(out, wait=20)
    assert got.path.read_bytes() == data


def test_client_refuses_a_duplicate_by_blake3(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    src = tmp_path / "same.txt"
    src.write_bytes(b"twice")
    alice = client("alice")
    alice.send([src], to="bob")
    with pytest.raises(DuplicateError, match="identical copy"):
        alice.send([src], to="bob")
    assert [f.digest for f in alice.queued("bob", b3(b"twice"), algorithm="blake3")] == [
        b3(b"twice")
    ]


def test_cli_send_digest_option(relay: Relay, tmp_path: Path) -> None:
    src = tmp_path / "cli.txt"
    src.write_bytes(b"from the command line")
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "WIRELAB_URL": relay.server.url,
        "WIRELAB_TOKEN": relay.tokens["alice"],
        "WIRELAB_CONFIG": "",
        "WIRELAB_TOKEN_FILE": "",
    }
    result = CliRunner().invoke(
        main, ["send", str(src), "--to", "bob", "--digest", "sha256", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    [sent] = json.loads(result.output)["files"]
    data = b"from the command line"
    assert (sent["digest_algorithm"], sent["digest"], sent["sha256"]) == (
        "sha256",
        sha(data),
        sha(data),
    )
    bad = CliRunner().invoke(main, ["send", str(src), "--to", "bob", "--digest", "md5"], env=env)
    assert bad.exit_code != 0 and "md5" in bad.output
