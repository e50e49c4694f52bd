"""tus requests and a stallable request body, shared by the tests that drive several real
server processes (tests/relay/test_relay_processes.py, the distributed cluster test)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


class Users(Protocol):
    """What the helpers need of a test deployment: each user's auth header."""

    def auth(self, user: str) -> dict[str, str]: ...


class Server(Protocol):
    url: str


def tus_metadata(**fields: str) -> str:
    """An ``Upload-Metadata`` header value."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def create_upload(c: Users, server: Server, size: int) -> str:
    """Create alice's tus upload of ``size`` bytes to bob on ``server``; its location."""
    r = httpx.post(
        f"{server.url}/v1/relay/uploads",
        headers={
            **TUS,
            **c.auth("alice"),
            "Upload-Length": str(size),
            "Upload-Metadata": tus_metadata(to="bob", filename="big.bin"),
        },
    )
    assert r.status_code == 201, r.text
    return str(r.headers["Location"])


def offset_of(c: Users, server: Server, location: str) -> int:
    """The upload's offset as ``server`` reports it."""
    r = httpx.head(server.url + location, headers={**TUS, **c.auth("alice")})
    assert r.status_code == 200, r.text
    return int(r.headers["Upload-Offset"])


def patch(
    c: Users, server: Server, location: str, offset: int, body: Any, **headers: str
) -> httpx.Response:
    """Append ``body`` (bytes or an iterator of chunks) at ``offset`` through ``server``."""
    return httpx.patch(
        server.url + location,
        headers={**PATCH, **c.auth("alice"), "Upload-Offset": str(offset), **headers},
        content=body,
        timeout=60,
    )


def download(c: Users, server: Server, file_url: str) -> bytes:
    """Bob's download of ``file_url`` through ``server`` (asserted 200)."""
    r = httpx.get(server.url + file_url, headers=c.auth("bob"), timeout=60)
    assert r.status_code == 200, r.text
    return r.content


class StalledBody:
    """A request body that sends ``head``, then waits for :meth:`go` before ``tail``;
    :attr:`sent` is set once ``head`` is handed to the connection."""

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head, self.tail = head, tail
        self.sent, self.resume = threading.Event(), threading.Event()
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def chunks(self) -> Iterator[bytes]:
        for i in range(0, len(self.head), 256 * 1024):
            yield self.head[i : i + 256 * 1024]
        self.sent.set()
        assert self.resume.wait(60)
        yield self.tail

    def go(self) -> None:
        self.resume.set()

    def wait_sent(self) -> None:
        assert self.sent.wait(60), "the head of the body was not sent"

    def run(self, send: Callable[[Iterator[bytes]], httpx.Response]) -> threading.Thread:
        """Send in a thread; :attr:`response` or :attr:`error` holds the outcome."""

        def target() -> None:
            try:
                self.response = send(self.chunks())
            except httpx.HTTPError as exc:
                self.error = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread
