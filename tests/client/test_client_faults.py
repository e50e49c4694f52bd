"""What the clients do with broken servers: corrupt, truncated, aborted and refused streams,
error statuses, and transport failures, through mock transports and raw TCP sockets.

The fakes at the top are in-process: hand-made stream bodies, a mock transport serving them
in chosen pieces, and a one-connection raw TCP server that misbehaves on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirelab import (
    HTTPStatusError,
    IntegrityError,
    NetworkError,
    ProtocolError,
    TimeoutError,
    TruncatedError,
    UsageError,
)
from wirelab.client import AsyncClient, Client, StreamedFile
from wirelab.framing import StreamEncoder

MEDIA_TYPE = "application/vnd.wirelab.stream; version=1"


@dataclass
class Body:
    """A stream body and where each file's data starts in it."""

    data: bytes
    files: list[bytes]
    data_offsets: list[int] = field(default_factory=list)
    seed: int = 7

    def flipped(self, file_index: int, byte: int = 0) -> bytes:
        """The body with one data byte of file ``file_index`` inverted."""
        pos = self.data_offsets[file_index] + byte
        return self.data[:pos] + bytes([self.data[pos] ^ 0xFF]) + self.data[pos + 1 :]


def ramp_files(sizes: Sequence[int]) -> list[bytes]:
    """int16 little-endian ramp files (0, 1, 2, ...) of the given byte sizes."""
    return [np.arange(size // 2, dtype="<i2").tobytes() for size in sizes]


def build_body(
    files: Sequence[bytes],
    *,
    seed: int = 7,
    names: Sequence[str] | None = None,
    chunk: int = 1000,
    abort_after: int | None = None,
) -> Body:
    """A valid body carrying ``files`` (int16 little), data frames of ``chunk`` bytes.

    With ``abort_after=k`` the stream ends with an ``X`` frame after ``k`` files.
    """
    enc = StreamEncoder()
    params = {"count": len(files), "seed": seed, "dtype": "int16", "byteorder": "little"}
    out = bytearray(enc.start(seed=seed, count=len(files), params=params))
    body = Body(b"", list(files), seed=seed)
    for index, data in enumerate(files):
        if abort_after is not None and index == abort_after:
            out += enc.abort("shutdown", "the server is shutting down")
            body.data = bytes(out)
            return body
        name = names[index] if names is not None else f"{index:06d}.int16"
        out += enc.file_start(
            index=index, name=name, size=len(data), dtype="int16", byteorder="little", offset=0.0
        )
        body.data_offsets.append(len(out) + 5)
        for i in range(0, len(data), chunk):
            out += enc.data(data[i : i + chunk])
        out += enc.file_end(hashlib.sha256(data).hexdigest())
    out += enc.end()
    body.data = bytes(out)
    return body


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class ChunkStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces, then optionally an exception."""

    def __init__(self, chunks: Sequence[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error


def serving(
    chunks: Sequence[bytes],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    error: Exception | None = None,
    seen: list[httpx.Request] | None = None,
) -> httpx.MockTransport:
    """A transport answering every request with ``chunks`` (for sync and async clients)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        all_headers = {"content-type": MEDIA_TYPE} if status == 200 else {}
        all_headers.update(headers or {})
        return httpx.Response(status, headers=all_headers, stream=ChunkStream(chunks, error))

    return httpx.MockTransport(handler)


def raising(exc_factory: Callable[[httpx.Request], Exception]) -> httpx.MockTransport:
    """A transport whose every request fails with ``exc_factory(request)``."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_factory(request)

    return httpx.MockTransport(handler)


def http_head(framing: str) -> bytes:
    """A 200 response head; ``framing`` is ``chunked``, ``length:N`` or ``close``."""
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {MEDIA_TYPE}"]
    if framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
    elif framing.startswith("length:"):
        lines.append(f"Content-Length: {framing.split(':')[1]}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def as_chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@dataclass
class RawServer:
    """A one-connection TCP server; ``release`` lets it finish (close or reset)."""

    url: str
    release: threading.Event


@contextmanager
def raw_server(
    payload: bytes, *, reset: bool = False, wait: bool = False, rest: bytes = b""
) -> Iterator[RawServer]:
    """Serve one connection: read the request head, send ``payload``, then (after
    ``release`` is set, if ``wait``) send ``rest`` and close, or reset if ``reset``
    (SO_LINGER 0: the peer gets RST instead of FIN)."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    request += piece
                conn.sendall(payload)
                if wait:
                    release.wait(10)
                if rest:
                    conn.sendall(rest)
                if reset:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError as exc:  # pragma: no cover - reported at teardown
            errors.append(exc)

    thread = threading.Thread(target=serve, name="raw-test-server", daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        yield RawServer(f"http://127.0.0.1:{port}", release)
    finally:
        release.set()
        if thread.is_alive():  # the client never connected: unblock accept()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                pass
        thread.join(10)
        listener.close()
    assert not errors, errors


def json_body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


BASE = "http://wirelab.test"
SIZES = [3000, 0, 5000, 1200]


@pytest.fixture
def body() -> Body:
    return build_body(ramp_files(SIZES))


def collect(client: Client, got: list[StreamedFile]) -> None:
    """Read a whole stream into ``got`` (so a test sees the files before an error)."""
    with client.stream() as reader:
        got.extend(reader)


class TestValidBodies:
    @settings(max_examples=60, deadline=None)
    @given(cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=12))
    def test_any_split_gives_the_same_files(self, cuts: list[int]) -> None:
        body = build_body(ramp_files(SIZES))
        points = sorted({0, len(body.data), *(c % (len(body.data) + 1) for c in cuts)})
        chunks = [body.data[a:b] for a, b in itertools.pairwise(points)]
        with Client(BASE, transport=serving(chunks)) as client:
            reader = client.stream()
            files = list(reader)
        assert [f.data for f in files] == body.files and reader.completed

    def test_only_given_options_are_sent(self, body: Body) -> None:
        seen: list[httpx.Request] = []
        with Client(BASE + "/prefix", transport=serving([body.data], seen=seen)) as client:
            list(client.stream(count=4, seed=None, dtype="int16", speed=2.5))
        url = seen[0].url
        assert url.path == "/prefix/v1/stream"
        assert dict(url.params) == {"count": "4", "dtype": "int16", "speed": "2.5"}
        assert seen[0].headers["accept-encoding"] == "identity"

    def test_wrong_option_is_a_usage_error(self) -> None:
        with Client(BASE, transport=serving([])) as client:
            with pytest.raises(UsageError, match="unknown stream option 'colour'"):
                client.stream(colour="red")  # type: ignore[call-arg]
            with pytest.raises(UsageError, match="count must be int"):
                client.stream(count=True)
            with pytest.raises(UsageError, match="seed must be int"):
                client.stream(seed="1")  # type: ignore[arg-type]

    def test_seed_header_disagreeing_with_the_stream_header(self, body: Body) -> None:
        transport = serving([body.data], headers={"wirelab-seed": "8"})
        with (
            Client(BASE, transport=transport) as client,
            pytest.raises(IntegrityError, match="Wirelab-Seed header says 8"),
        ):
            list(client.stream())


class TestBrokenBodies:
    @pytest.mark.parametrize("block", [100, 10**6])
    def test_flipped_data_byte_is_an_integrity_error(self, body: Body, block: int) -> None:
        got: list[StreamedFile] = []
        with (
            Client(BASE, transport=serving(split(body.flipped(2), block))) as client,
            pytest.raises(IntegrityError, match=r"SHA-256|sha256"),
        ):
            collect(client, got)
        assert [f.index for f in got] == [0, 1]  # the good files before it, even in one block

    @pytest.mark.parametrize("cut", [0, 5, 20, -30, -1])
    def test_cut_body_is_truncated(self, body: Body, cut: int) -> None:
        with (
            Client(BASE, transport=serving([body.data[:cut]])) as client,
            pytest.raises(TruncatedError),
        ):
            list(client.stream())

    def test_abort_frame_is_truncated_with_the_servers_reason(self) -> None:
        aborted = build_body(ramp_files(SIZES), abort_after=2)
        got: list[StreamedFile] = []
        with (
            Client(BASE, transport=serving([aborted.data])) as client,
            pytest.raises(TruncatedError) as info,
        ):
            collect(client, got)
        assert str(info.value) == (
            "server aborted the stream: shutdown: the server is shutting down"
        )
        assert [f.index for f in got] == [0, 1]

    def test_garbage_is_a_protocol_error(self) -> None:
        with (
            Client(BASE, transport=serving([b"<html>hello</html>"])) as client,
            pytest.raises(ProtocolError),
        ):
            list(client.stream())

    def test_other_media_type_is_a_protocol_error(self, body: Body) -> None:
        transport = serving([body.data], headers={"content-type": "text/html"})
        with (
            Client(BASE, transport=transport) as client,
            pytest.raises(ProtocolError, match="is this a wirelab server"),
        ):
            list(client.stream())

    def test_incomplete_chunked_read_is_truncated(self, body: Body) -> None:
        error = httpx.RemoteProtocolError("incomplete chunked read")
        with (
            Client(BASE, transport=serving([body.data[:300]], error=error)) as client,
            pytest.raises(TruncatedError, match="incomplete chunked read") as info,
        ):
            list(client.stream())
        assert info.value.__cause__ is error

    def test_read_timeout_mid_body(self, body: Body) -> None:
        error = httpx.ReadTimeout("timed out")
        with (
            Client(BASE, transport=serving([body.data[:300]], error=error)) as client,
            pytest.raises(TimeoutError),
        ):
            list(client.stream())

    def test_reset_mid_body_is_a_network_error(self, body: Body) -> None:
        error = httpx.ReadError("[Errno 104] Connection reset by peer")
        with (
            Client(BASE, transport=serving([body.data[:300]], error=error)) as client,
            pytest.raises(NetworkError, match="reset"),
        ):
            list(client.stream())


class TestErrorResponses:
    def test_fastapi_problem_body(self) -> None:
        problem = {"detail": [{"loc": ["query", "count"], "msg": "must be <= 100000"}]}
        transport = serving([json_body(problem)], status=422)
        with Client(BASE, transport=transport) as client, pytest.raises(HTTPStatusError) as info:
            list(client.stream(count=10**9))
        assert str(info.value) == "HTTP 422 from /v1/stream: count: must be <= 100000"
        assert info.value.detail == problem and info.value.status_code == 422

    def test_text_body_becomes_one_line(self) -> None:
        transport = serving([b"bad\ngateway\n"], status=502, headers={"content-type": "text/plain"})
        with (
            Client(BASE, transport=transport) as client,
            pytest.raises(HTTPStatusError, match=r"^HTTP 502 from /v1/stream: bad gateway$"),
        ):
            list(client.stream())

    def test_binary_body_falls_back_to_the_reason(self) -> None:
        transport = serving([b"\xff\x00"], status=503)
        with (
            Client(BASE, transport=transport) as client,
            pytest.raises(HTTPStatusError, match=r"503 .*Service Unavailable"),
        ):
            client.health()

    def test_invalid_json_document(self) -> None:
        transport = serving([b"[1, 2"], headers={"content-type": "application/json"})
        with (
            Client(BASE, transport=transport) as client,
            pytest.raises(ProtocolError, match="invalid JSON from /healthz"),
        ):
            client.health()

    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (httpx.ConnectError("[Errno 111] Connection refused"), NetworkError),
            (httpx.ConnectTimeout("timed out"), TimeoutError),
            (httpx.RemoteProtocolError("Server disconnected without sending a response."),
             NetworkError),
            (httpx.RemoteProtocolError("illegal status line"), ProtocolError),
            (httpx.UnsupportedProtocol("ftp"), UsageError),
            (OSError(101, "Network is unreachable"), NetworkError),
        ],
    )  # fmt: skip
    def test_transport_failures(self, exc: Exception, expected: type[Exception]) -> None:
        with (
            Client(BASE, transport=raising(lambda _: exc)) as client,
            pytest.raises(expected) as info,
        ):
            list(client.stream())
        assert info.value.__cause__ is exc


class TestAsyncFaults:
    @pytest.mark.asyncio
    async def test_split_body_and_corruption(self, body: Body) -> None:
        async with AsyncClient(BASE, transport=serving(split(body.data, 7))) as client:
            assert [f.data async for f in client.stream()] == body.files
        async with AsyncClient(BASE, transport=serving([body.flipped(0, 10)])) as client:
            with pytest.raises(IntegrityError):
                [f async for f in client.stream()]

    @pytest.mark.asyncio
    async def test_truncation_and_status(self, body: Body) -> None:
        error = httpx.RemoteProtocolError("peer closed connection without sending complete body")
        async with AsyncClient(BASE, transport=serving([body.data[:99]], error=error)) as client:
            with pytest.raises(TruncatedError):
                [f async for f in client.stream()]
        problem = json_body({"detail": "Not Found"})
        async with AsyncClient(BASE, transport=serving([problem], status=404)) as client:
            with pytest.raises(HTTPStatusError, match=r"^HTTP 404 from /v1/stream: Not Found$"):
                [f async for f in client.stream()]


class TestRealSockets:
    """A raw TCP server sends a valid response head and part of a real body, then hangs up."""

    @pytest.mark.parametrize("framing", ["chunked", "length", "close"])
    def test_early_close_is_truncated(self, body: Body, framing: str) -> None:
        part = body.data[: body.data_offsets[1] + 10]  # into the second file's data
        if framing == "chunked":
            payload = http_head("chunked") + as_chunk(part)
        elif framing == "length":
            payload = http_head(f"length:{len(body.data)}") + part
        else:
            payload = http_head("close") + part
        got: list[StreamedFile] = []
        with raw_server(payload) as srv, Client(srv.url) as client, pytest.raises(TruncatedError):
            collect(client, got)
        assert [f.index for f in got] == [0]

    def test_reset_is_a_network_error(self, body: Body) -> None:
        payload = http_head("chunked") + as_chunk(body.data[: body.data_offsets[0] + 10])
        with (
            raw_server(payload, wait=True, reset=True) as srv,
            Client(srv.url) as client,
            client.stream_events() as events,  # returns once the stream header is read
        ):
            srv.release.set()  # now the server resets the connection
            with pytest.raises(NetworkError, match="reset"):
                list(events)

    def test_silence_is_a_timeout(self, body: Body) -> None:
        payload = http_head("chunked") + as_chunk(body.data[:20])
        with (
            raw_server(payload, wait=True) as srv,
            Client(srv.url, timeout=0.05) as client,
            pytest.raises(TimeoutError),
        ):
            list(client.stream())

    def test_hang_up_before_answering_is_a_network_error(self) -> None:
        with (
            raw_server(b"") as srv,
            Client(srv.url) as client,
            pytest.raises(NetworkError, match="without sending a response"),
        ):
            client.health()

    @pytest.mark.asyncio
    async def test_async_early_close_and_reset(self, body: Body) -> None:
        payload = http_head("chunked") + as_chunk(body.data[:-3])
        with raw_server(payload) as srv:
            async with AsyncClient(srv.url) as client:
                with pytest.raises(TruncatedError, match="ended early"):
                    [f async for f in client.stream()]
        with raw_server(payload, wait=True, reset=True) as srv:
            async with AsyncClient(srv.url) as client, client.stream_events() as events:
                srv.release.set()
                with pytest.raises(NetworkError):
                    [e async for e in events]
