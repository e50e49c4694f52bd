"""Stream bodies written straight to uvicorn's transport (``wirelab.server._direct``): the
same bytes as through ASGI ``send``, under back-pressure too, and never for other servers."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from wirelab.server import ServerConfig, create_app
from wirelab.server._direct import PAGE, _split, direct_body, page_cut
from wirelab.testing._live import LiveServer

_ZERO = {"min_interval": 0, "max_interval": 0}
# One query per path of the engine: small files in one message, periodic content from the
# shared body cache (write_parts), random content filled in place (1 MiB messages), and
# the SHA-256 digest.
QUERIES: list[dict[str, Any]] = [
    {"count": 6, "min_size": 2, "max_size": 4096, "seed": 1, **_ZERO},
    {"count": 3, "min_size": 1 << 20, "max_size": 1 << 20, "content": "ramp", "seed": 2, **_ZERO},
    {"count": 2, "min_size": 300_000, "max_size": 2_500_002, "content": "random", "seed": 3,
     **_ZERO},
    {"count": 3, "min_size": 70_000, "max_size": 90_000, "digest": "sha256", "seed": 4, **_ZERO},
]  # fmt: skip


async def _asgi_bodies(tmp_path: Path, queries: list[dict[str, Any]]) -> list[bytes]:
    """The bodies from the app in-process: every message through ``send``."""
    app = create_app(ServerConfig(data_dir=tmp_path / "data", only="stream"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        answers = [await client.get("/v1/stream", params=q) for q in queries]
        assert [r.status_code for r in answers] == [200] * len(queries)
        assert app.state.stream_runtime.direct_streams == 0  # not uvicorn: no direct writes
    return [r.content for r in answers]


@pytest.mark.asyncio
async def test_direct_writes_send_the_bytes_send_would(server: LiveServer, tmp_path: Path) -> None:
    expected = await _asgi_bodies(tmp_path, QUERIES)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for query, body in zip(QUERIES, expected, strict=True):
            r = await client.get("/v1/stream", params=query)
            assert r.status_code == 200, r.text
            assert r.content == body, query
    assert server.stream_runtime.direct_streams == len(QUERIES)


def _get_slowly(server: LiveServer, path: str, pause: float) -> tuple[bytes, int]:
    """The raw response to ``GET path``, read only after ``pause`` seconds, with a small
    receive buffer: the server's socket fills and its writes must wait. Also the files
    the server had sent when the reading began."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        time.sleep(pause)
        sent_before_reading = server.stream_runtime.files_sent
        chunks = []
        while data := sock.recv(1 << 16):
            chunks.append(data)
    return b"".join(chunks), sent_before_reading


def _chunks(raw: bytes) -> list[bytes]:
    """The data of each chunk of a raw chunked response (a whole one, with its head)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    chunks: list[bytes] = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"  # the response ends: nothing after the last chunk
            return chunks
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]


def _dechunk(raw: bytes) -> bytes:
    return b"".join(_chunks(raw))


def _get(server: LiveServer, query: dict[str, Any]) -> bytes:
    path = "/v1/stream?" + "&".join(f"{k}={v}" for k, v in query.items())
    return _exchange(
        server, [f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()]
    )


def _wire(chunk: bytes) -> int:
    """Bytes a chunk takes on the wire: its size line, its data and a CRLF."""
    return len(b"%x\r\n" % len(chunk)) + len(chunk) + 2


def _frame_ends(body: bytes) -> set[int]:
    """Offsets in ``body`` (a stream) where a frame ends: after the 8-byte preamble, each
    frame is a type byte, a 4-byte big-endian length and the payload."""
    ends, at = set(), 8
    while at < len(body):
        at += 5 + int.from_bytes(body[at + 1 : at + 5], "big")
        ends.add(at)
    assert at == len(body)
    return ends


@pytest.mark.asyncio
async def test_back_to_back_large_messages_go_out_in_whole_pages(
    server: LiveServer, tmp_path: Path
) -> None:
    queries: list[dict[str, Any]] = [
        {"count": 5, "min_size": 1 << 20, "max_size": 1 << 20, "content": "ramp", "seed": 2,
         **_ZERO},
        {"count": 3, "min_size": 300_000, "max_size": 2_500_002, "content": "random",
         "seed": 3, **_ZERO},
    ]  # fmt: skip
    expected = await _asgi_bodies(tmp_path, queries)
    for query, body in zip(queries, expected, strict=True):
        chunks = _chunks(_get(server, query))
        assert b"".join(chunks) == body, query
        large = [c for c in chunks[1:-2] if len(c) >= 64 * 1024]  # not S, the tail, the end
        assert len(large) >= query["count"] - 1, [len(c) for c in chunks]
        assert all(_wire(c) % PAGE == 0 for c in large), [_wire(c) % PAGE for c in large]


@pytest.mark.asyncio
async def test_paced_large_files_hold_nothing_back(server: LiveServer, tmp_path: Path) -> None:
    # Between two files the stream waits: each file's bytes must all be out before it.
    query = {"count": 3, "min_size": 200_000, "max_size": 1_500_000, "content": "random",
             "min_interval": 0.01, "max_interval": 0.01, "seed": 5}  # fmt: skip
    (expected,) = await _asgi_bodies(tmp_path, [query])
    chunks = _chunks(_get(server, query))
    assert b"".join(chunks) == expected
    ends = _frame_ends(expected)
    at = 0
    for chunk in chunks:
        at += len(chunk)
        assert at in ends, "a chunk ended inside a frame"


@pytest.mark.asyncio
async def test_a_full_socket_waits_and_loses_nothing(server: LiveServer, tmp_path: Path) -> None:
    query: dict[str, Any] = {"count": 8, "min_size": 1 << 20, "max_size": 2 << 20,
                             "content": "random", "seed": 7, **_ZERO}  # fmt: skip
    (expected,) = await _asgi_bodies(tmp_path, [query])
    path = "/v1/stream?" + "&".join(f"{k}={v}" for k, v in query.items())
    raw, sent_before_reading = _get_slowly(server, path, pause=0.5)
    # Writes waited for the socket: the stream did not run ahead into memory.
    assert sent_before_reading < query["count"] - 2
    assert _dechunk(raw) == expected


def test_no_direct_body_for_other_senders() -> None:
    async def send(message: Any) -> None:  # not uvicorn's: no cycle to write past
        raise AssertionError("not called")

    assert direct_body(send) is None

    class Other:
        async def send(self, message: Any) -> None:
            raise AssertionError("not called")

    assert direct_body(Other().send) is None  # a bound method of something else


@pytest.mark.asyncio
async def test_paced_files_sent_by_the_timer_are_the_same_bytes(
    server: LiveServer, tmp_path: Path
) -> None:
    query = {"count": 12, "min_size": 2, "max_size": 4096, "min_interval": 0.03,
             "max_interval": 0.06, "seed": 11}  # fmt: skip
    (expected,) = await _asgi_bodies(tmp_path, [query])
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        assert (await client.get("/v1/stream", params=query)).content == expected
    # The client can have the last byte before the server's task counted the last file.
    await _until_no_stream(server)
    # The pacer's callback sent them all but the last (which ends the response through
    # send), even one whose time had passed (a stalled machine).
    assert server.stream_runtime.files_ahead == 11
    assert server.stream_runtime.files_sent == 12


@pytest.mark.asyncio
async def test_paced_files_wait_for_a_full_socket(server: LiveServer, tmp_path: Path) -> None:
    # Files of one chunk (the largest the timer sends), 32 MB/s: the socket fills.
    query: dict[str, Any] = {"count": 500, "min_size": 65536, "max_size": 65536,
                             "min_interval": 0.002, "max_interval": 0.002, "seed": 12}  # fmt: skip
    (expected,) = await _asgi_bodies(tmp_path, [query])
    path = "/v1/stream?" + "&".join(f"{k}={v}" for k, v in query.items())
    raw, sent_before_reading = _get_slowly(server, path, pause=0.8)
    # 400 files (26 MB) were due by then; the socket took ~4 MB (~60 files), and the stream
    # waited for it.
    assert sent_before_reading < 150, sent_before_reading
    assert _dechunk(raw) == expected
    assert 0 < server.stream_runtime.files_ahead < query["count"]


async def _until_no_stream(server: LiveServer) -> None:
    """Wait (up to 30 s) until the server's stream tasks have ended (it runs in another
    thread)."""
    deadline = time.monotonic() + 30
    while server.stream_runtime.active:
        assert time.monotonic() < deadline, "a stream task did not end"
        await asyncio.sleep(0.01)


def _exchange(server: LiveServer, requests: list[bytes]) -> bytes:
    """Send ``requests`` on one connection (the last one closes it); all that came back,
    without the ``date`` header (it may tick between two exchanges)."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"".join(requests))
        chunks = []
        while data := sock.recv(1 << 16):
            chunks.append(data)
    return re.sub(rb"\r\ndate: [^\r]*", b"", b"".join(chunks))


def test_head_with_the_first_chunk_is_what_uvicorn_writes(server: LiveServer) -> None:
    path = b"/v1/stream?count=3&min_size=2&max_size=64&min_interval=0&max_interval=0&seed=5"
    requests = [
        b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n",  # keep-alive: the next one follows
        b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ]
    runtime = server.stream_runtime
    direct = _exchange(server, requests)
    assert runtime.direct_streams == 2
    runtime.direct_start = None  # the head through uvicorn's send
    through_send = _exchange(server, requests)
    assert runtime.direct_streams == 4  # (the bodies still go past send)
    assert direct == through_send
    assert direct.count(b"HTTP/1.1 200 OK\r\n") == 2 and direct.count(b"connection: close") == 1


def test_page_cut_is_the_largest_whole_page_chunk() -> None:
    for size in [*range(PAGE, 3 * PAGE), *range(0xFFFF0 - PAGE, 0x100010 + PAGE), 123_456_789]:
        n = page_cut(size)
        assert size - PAGE < n <= size, size
        assert (len(b"%x\r\n" % n) + n + 2) % PAGE == 0, size
    # Already whole pages: no cut (0xffa = 4090 bytes of data: 5 + 4090 + 2 = 4097 is not,
    # 4089 is: 5 + 4089 + 2 = 4096).
    assert page_cut(4089) == 4089 and page_cut(4090) == 4089


def test_split_keeps_every_byte_in_order() -> None:
    parts: list[bytes | bytearray | memoryview] = [
        b"abc", bytearray(b"defgh"), memoryview(b"ijklmnop"), b"q"
    ]  # fmt: skip
    whole = b"".join(parts)
    for n in range(len(whole) + 1):
        head, tail = _split(parts, n)
        assert b"".join(head) == whole[:n] and tail == whole[n:]
        assert all(len(p) for p in head)  # no empty piece handed to the transport
