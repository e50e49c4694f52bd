"""In-process fakes for client tests: hand-made stream bodies, a mock transport that serves
them in chosen pieces, and a one-shot raw TCP server that misbehaves on purpose."""

from __future__ import annotations

import contextlib
import hashlib
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
