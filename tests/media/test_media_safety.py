"""Source safety: only http(s); loopback, private, link-local... addresses refused unless
opened with --media-allow-network, for the source and everything ffmpeg connects to.

No test here sends a packet to a non-loopback address: the refusals under test happen
before any connection attempt (IP literals need no DNS; the checking proxy refuses
before it connects).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from wirelab.media import NetworkPolicy
from wirelab.media._proxy import CheckingProxy
from wirelab.media._tools import find_tools
from wirelab.media.testing import MediaServer, TestMedia, media_server

from .conftest import Media, wait_job

PRIVATE = "10.0.0.1"
METADATA = "169.254.169.254"


@pytest.fixture
def default_media(media_factory: Callable[..., Media]) -> Media:
    """A server with the default policy: no network opened."""
    return media_factory(allow_network=())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/v.mp4", "only http and https"),
        ("gopher://127.0.0.1/", "only http and https"),
        (f"http://{PRIVATE}/v.mp4", "private"),
        (f"http://{METADATA}/latest/meta-data/", "link-local"),
        ("http://0.0.0.0:8080/v.mp4", "unspecified"),
        (f"http://[::ffff:{PRIVATE}]/v.mp4", "private"),
        ("http://[fe80::1]/v.mp4", "link-local"),
        ("http://224.0.0.1/v.mp4", "multicast"),
        ("http://240.0.0.1/v.mp4", "reserved"),
        ("http://100.64.0.1/v.mp4", "address"),
    ],
)
def test_refused_at_submit(default_media: Media, url: str, reason: str) -> None:
    response = default_media.alice.post("/v1/media/jobs", json={"source": url})
    assert response.status_code == 422
    assert reason in response.json()["detail"]


def test_loopback_refused_by_default(default_media: Media, source: MediaServer) -> None:
    response = default_media.alice.post("/v1/media/jobs", json={"source": source.url("video.mp4")})
    assert response.status_code == 422
    assert "127.0.0.1 is a loopback address" in response.json()["detail"]
    by_name = source.url("video.mp4").replace("127.0.0.1", "localhost")
    response = default_media.alice.post("/v1/media/jobs", json={"source": by_name})
    assert response.status_code == 422
    assert "loopback" in response.json()["detail"]


@pytest.mark.distributed
def test_allowed_network_opens_loopback_by_name(media: Media, source: MediaServer) -> None:
    url = source.url("video.mp4").replace("127.0.0.1", "localhost")
    job, _ = wait_job(media.alice, media.alice.post(
        "/v1/media/jobs", json={"source": url, "end": "1", "accuracy": "fast"}
    ).json()["id"])  # fmt: skip
    assert job["state"] == "succeeded", job


@pytest.fixture
def hostile(tmp_path: Path, test_media: TestMedia) -> Iterator[MediaServer]:
    """A server with playlists whose segments point at refused addresses."""
    (tmp_path / "private.m3u8").write_text(_playlist(f"http://{PRIVATE}/seg000.ts"))
    (tmp_path / "metadata.m3u8").write_text(_playlist(f"http://{METADATA}/seg000.ts"))
    (tmp_path / "https.m3u8").write_text(_playlist(f"https://{PRIVATE}/seg000.ts"))
    (tmp_path / "mixed.m3u8").write_text(_playlist("seg000.ts", f"http://{PRIVATE}/seg001.ts"))
    (tmp_path / "seg000.ts").write_bytes((test_media.root / "hls" / "seg000.ts").read_bytes())
    with media_server(tmp_path) as server:
        yield server


def _playlist(*segments: str) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for segment in segments:
        lines += ["#EXTINF:2.0,", segment]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


@pytest.mark.parametrize(
    ("path", "address"),
    [
        ("private.m3u8", PRIVATE),
        ("metadata.m3u8", METADATA),
        ("https.m3u8", PRIVATE),
        ("mixed.m3u8", PRIVATE),
        (f"redirect?to=http://{PRIVATE}/v.mp4", PRIVATE),
        (f"redirect?to=http://{METADATA}/latest/", METADATA),
        (f"redirect?to=https://{PRIVATE}/v.mp4", PRIVATE),
    ],
)
def test_everything_ffmpeg_fetches_is_checked(
    media: Media, hostile: MediaServer, path: str, address: str
) -> None:
    """The source itself is allowed (127.0.0.0/8 is opened); what it points to is not."""
    body = {"source": hostile.url(path), "end": "3", "accuracy": "exact"}
    job, _ = wait_job(media.alice, media.alice.post("/v1/media/jobs", json=body).json()["id"])
    assert job["state"] == "failed", job
    error = job["error"]
    assert isinstance(error, dict)
    assert error["message"].startswith("source refused:")
    assert address in error["message"]
    assert error["retryable"] is False


def test_redirect_to_an_allowed_address_is_followed(media: Media, source: MediaServer) -> None:
    target = source.url("video.mp4")
    body = {"source": source.url(f"redirect?to={target}"), "end": "1", "accuracy": "fast"}
    job, _ = wait_job(media.alice, media.alice.post("/v1/media/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded", job


def test_https_sources_tunnel_through_the_checking_proxy(
    media: Media, test_media: TestMedia, tmp_path: Path
) -> None:
    """ffmpeg's TLS goes through the proxy as a CONNECT tunnel (checked like plain http).
    Debian's ffmpeg 5.1 does not verify source certificates, so a throwaway CA works."""
    if "imageio_ffmpeg" in find_tools().ffmpeg:
        pytest.skip("the wheel's ffmpeg verifies certificates against the system's CAs")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with media_server(test_media.root, tls=context) as server:
        body = {"source": server.url("hls/index.m3u8"), "start": "2", "end": "4",
                "accuracy": "fast"}  # fmt: skip
        job, _ = wait_job(media.alice, media.alice.post("/v1/media/jobs", json=body).json()["id"])
        assert job["state"] == "succeeded", job
        assert "/hls/seg001.ts" in server.requests


def test_a_playlist_cannot_read_the_servers_files(
    media: Media, test_media: TestMedia, tmp_path: Path
) -> None:
    segment = test_media.root / "hls" / "seg001.ts"
    (tmp_path / "local.m3u8").write_text(_playlist(f"file://{segment}"))
    with media_server(tmp_path) as server:
        body = {"source": server.url("local.m3u8"), "accuracy": "fast"}
        job, _ = wait_job(media.alice, media.alice.post("/v1/media/jobs", json=body).json()["id"])
    assert job["state"] == "failed", job
    assert job["error"]["retryable"] is False


def test_the_proxy_refuses_before_connecting() -> None:
    """A refused address gets no connection attempt at all: a listener on it sees none
    (shown on loopback, refused by the default policy, both by IP and by name)."""

    async def run() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        port = listener.getsockname()[1]
        try:
            async with CheckingProxy(NetworkPolicy()) as proxy:
                proxy_port = int(proxy.url.rsplit(":", 1)[1])
                for request in (
                    f"GET http://127.0.0.1:{port}/v.mp4 HTTP/1.1\r\nHost: x\r\n\r\n",
                    f"GET http://localhost:{port}/v.mp4 HTTP/1.1\r\nHost: x\r\n\r\n",
                    f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n",
                ):
                    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
                    writer.write(request.encode())
                    answer = await reader.read()
                    writer.close()
                    assert answer.startswith(b"HTTP/1.1 403 "), answer
                    assert b"loopback address" in answer
                assert len(proxy.refusals) == 3
            with pytest.raises(BlockingIOError):
                listener.accept()
        finally:
            listener.close()

    asyncio.run(run())
