"""The relay on S3 storage (moto in server mode): files go through the bucket, and
``?redirect=1`` answers a 307 to a presigned, expiring URL of the bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wirelab.db import connect
from wirelab.relay import RelayLimits
from wirelab.storage._s3client import make_client
from wirelab.testing._s3server import S3Server, aws_env

from .conftest import Relay, stored_files
from .test_relay_tus import _create, _offset, _patch


@pytest.fixture
def s3_env(moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """The ``AWS_*`` variables pointing at moto."""
    for name, value in aws_env(moto_s3, tmp_path).items():
        monkeypatch.setenv(name, value) if value is not None else monkeypatch.delenv(
            name, raising=False
        )
    return moto_s3


@pytest.fixture
def s3_relay(relay_factory: Callable[..., Relay], s3_env: S3Server) -> Relay:
    return relay_factory(storage_url=f"s3://{s3_env.new_bucket()}/wirelab")


def test_a_missing_bucket_stops_start_up_then_is_a_503(
    relay_factory: Callable[..., Relay], s3_env: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RuntimeError, match="failed to start"):
        relay_factory(storage_url="s3://no-such-bucket-here/wirelab")
    assert "NoSuchBucket" in caplog.text
    assert "check the bucket name in the storage URL" in caplog.text
    caplog.clear()
    bucket = s3_env.new_bucket()
    # inline_max=0: a small send stored inline never touches the bucket
    relay = relay_factory(
        storage_url=f"s3://{bucket}/wirelab", relay_limits=RelayLimits(inline_max=0)
    )
    make_client().delete_bucket(Bucket=bucket)  # gone while the server runs
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "a"},
        content=b"x",
        headers={"Wirelab-Sha256": hashlib.sha256(b"x").hexdigest()},
    )
    assert r.status_code == 503, r.text
    assert r.json()["detail"] == "the server's storage is unavailable (503: try again later)"
    assert "NoSuchBucket" in caplog.text


def _send(relay: Relay, data: bytes) -> str:
    r = relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "report.pdf"},
        content=data,
        headers={"Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["url"])


def _downloads(relay: Relay) -> int:
    (doc,) = relay.bob.get("/v1/relay/inbox").json()["files"]
    return int(doc["downloads"])


def test_inline_file_on_s3_is_streamed_not_redirected(s3_relay: Relay) -> None:
    """A small file is stored inline (in the database): no object in the bucket, no
    presigned URL, so ``redirect=1`` answers with the bytes."""
    data = os.urandom(1000)
    url = _send(s3_relay, data)
    assert stored_files(s3_relay, "blobs") == []
    got = s3_relay.bob.get(url, params={"redirect": "1"})
    assert (got.status_code, got.content) == (200, data)
    assert _downloads(s3_relay) == 1
    assert s3_relay.bob.delete(url).status_code == 204
    assert stored_files(s3_relay) == []


def test_acknowledged_blobs_are_deleted_in_the_background(s3_relay: Relay) -> None:
    """An acknowledge answers once the row is gone and the key journaled; the blob goes
    in a background batch, after which neither the object nor the journal entry is
    left. The other files stay."""
    urls = [_send(s3_relay, os.urandom(300_000)) for _ in range(4)]
    assert len(stored_files(s3_relay, "blobs")) == 4
    for url in urls[:3]:
        assert s3_relay.bob.delete(url).status_code == 204
    s3_relay.server.settle()
    assert len(stored_files(s3_relay, "blobs")) == 1
    (doc,) = s3_relay.bob.get("/v1/relay/inbox").json()["files"]
    assert doc["url"] == urls[3]
    assert asyncio.run(_journal(s3_relay)) == []


async def _journal(relay: Relay) -> list[str]:
    async with await connect(relay.server.app.state.config.metadata_url) as db:
        return await db.relay.journal_list()


def test_redirect_to_a_presigned_url(s3_relay: Relay, moto_s3: S3Server) -> None:
    data = os.urandom(300_000)
    url = _send(s3_relay, data)
    assert s3_relay.bob.get(url).content == data  # streamed through the server
    ranged = s3_relay.bob.get(url, params={"redirect": "1"}, headers={"Range": "bytes=5-104"})
    assert ranged.status_code == 307
    assert ranged.headers["location"].startswith(moto_s3.endpoint)
    part = httpx.get(ranged.headers["location"], headers={"Range": "bytes=5-104"})
    assert (part.status_code, part.content) == (206, data[5:105])
    assert _downloads(s3_relay) == 1  # a range short of the end is not a download
    whole = s3_relay.bob.get(url, params={"redirect": "1"})
    assert whole.status_code == 307
    assert whole.headers["cache-control"] == "no-store"
    answer = httpx.get(whole.headers["location"])
    assert answer.content == data
    assert 'filename="report.pdf"' in answer.headers["content-disposition"]
    assert _downloads(s3_relay) == 2
    assert s3_relay.carol.get(url, params={"redirect": "1"}).status_code == 404


@pytest.mark.distributed
def test_tus_upload_resumes_and_commits_through_s3(s3_relay: Relay) -> None:
    data = os.urandom(6 * 1024 * 1024 + 5)  # more than one S3 part
    location = _create(s3_relay.alice, data)
    cut = 1_000_000
    assert _patch(s3_relay.alice, location, 0, data[:cut]).status_code == 204
    assert _offset(s3_relay.alice, location) == cut
    assert _patch(s3_relay.alice, location, cut, data[cut:]).status_code == 204
    (doc,) = s3_relay.bob.get("/v1/relay/inbox").json()["files"]
    assert s3_relay.bob.get(doc["url"]).content == data


def test_redirect_on_local_storage_serves_the_bytes(
    relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    relay = relay_factory(storage_url=str(tmp_path / "files"))  # a folder, in every mode
    url = _send(relay, b"local bytes")
    answer = relay.bob.get(url, params={"redirect": "1"})
    assert (answer.status_code, answer.content) == (200, b"local bytes")


@pytest.mark.distributed
def test_live_pass_through_is_not_offered_on_s3(s3_relay: Relay) -> None:
    data = os.urandom(100_000)
    location = _create(s3_relay.alice, data)
    assert _patch(s3_relay.alice, location, 0, data[:1000]).status_code == 204
    offered = s3_relay.bob.post("/v1/relay/inbox/next", params={"live": "true"})
    assert offered.status_code == 204  # as without live=true: nothing stored yet
    upload_id = location.rsplit("/", 1)[1]
    live = s3_relay.bob.get(f"/v1/relay/live/{upload_id}")
    assert live.status_code == 501
    assert "not offered on this server's storage (S3)" in live.json()["detail"]
    assert _patch(s3_relay.alice, location, 1000, data[1000:]).status_code == 204
    (doc,) = s3_relay.bob.get("/v1/relay/inbox").json()["files"]
    assert s3_relay.bob.get(doc["url"]).content == data
