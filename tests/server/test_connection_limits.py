"""Connection limits on a real server through raw sockets: head size, head and keep-alive
timeouts, the connection cap, and a log line for every refusal."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from wirelab.server import ConnectionLimits
from wirelab.testing._live import LiveServer

GET = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
WAIT = 15.0  # generous: the server closes well before, and no test measures how soon


@contextmanager
def connect(server: LiveServer) -> Iterator[socket.socket]:
    sock = socket.create_connection((server.host, server.port), timeout=WAIT)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails on a timeout)."""
    data = b""
    while block := sock.recv(65536):
        data += block
    return data


def read_response(sock: socket.socket) -> bytes:
    """One complete response with a Content-Length body (ConnectionError if closed)."""

    def more() -> bytes:
        if block := sock.recv(65536):
            return block
        raise ConnectionError("closed by the server")

    data = b""
    while b"\r\n\r\n" not in data:
        data += more()
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(dict(_headers(head))[b"content-length"])
    while len(body) < length:
        body += more()
    return head + b"\r\n\r\n" + body


def _headers(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (ln.partition(b":") for ln in lines)]


@pytest.fixture
def limited(
    server_factory: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> Callable[..., LiveServer]:
    """``limited(**ConnectionLimits fields)``: a server with those limits; refusals are
    captured in ``caplog`` (logger ``wirelab.server``)."""
    caplog.set_level(logging.INFO, logger="wirelab.server")

    def make(**limits: float | int | None) -> LiveServer:
        return server_factory(connection_limits=ConnectionLimits(**limits))  # type: ignore[arg-type]

    return make


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wirelab.server"]


def test_oversize_head_is_431_and_closed_without_buffering_it(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited(max_header_bytes=8192)
    big = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (16 << 20) + b"\r\n\r\n"
    tracemalloc.start()
    try:
        with connect(server) as sock:
            tracemalloc.reset_peak()
            # The server may stop reading: the answer is what counts.
            with contextlib.suppress(ConnectionError):
                sock.sendall(big)
            answer = read_until_closed(sock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer and b'"detail"' in answer
    # The server read 16 MiB of header: none of it was kept (httptools alone kept it all).
    assert peak < 4 << 20, f"peak traced memory {peak} bytes"
    assert any("431" in m and "127.0.0.1" in m for m in refusals(caplog))


def test_heads_under_the_limit_and_bodies_past_it_are_served(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited(max_header_bytes=8192)
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * 7000 + b"\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        # The same connection, a body 128 times the head limit in the same writes as its head.
        body = b"b" * (1 << 20)
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        assert read_response(sock).startswith(b"HTTP/1.1 405 ")
    assert refusals(caplog) == []


def test_oversize_pipelined_head_lets_the_request_before_it_finish(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited(max_header_bytes=8192)
    with connect(server) as sock:
        sock.sendall(
            GET + b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        )
        answer = read_until_closed(sock)
    # The first request is answered whole, then the connection is closed: the refused
    # head is never served and nothing is written into the response before it.
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1
    assert answer.endswith(b"}")
    assert any("431" in m for m in refusals(caplog))


def test_malformed_request_is_400_and_logged(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited()
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost t\r\n\r\n")  # a header without a colon
        assert read_until_closed(sock).startswith(b"HTTP/1.1 400 ")
    assert any("400, invalid HTTP request" in m for m in refusals(caplog))


def test_idle_keepalive_connection_is_closed(limited: Callable[..., LiveServer]) -> None:
    server = limited(keepalive_timeout=0.3)
    with connect(server) as sock:
        sock.sendall(GET)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert read_until_closed(sock) == b""  # closed by the server, nothing more sent


def test_half_sent_head_is_408_and_closed_even_if_it_trickles(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited(head_timeout=0.5)
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        # One header byte every 50 ms: bytes arriving must not keep a head alive forever.
        sock.settimeout(0.05)
        answer = b""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                block = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(b"X")
                except ConnectionError:
                    break
                continue
            if not block:
                break
            answer += block
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert any("408" in m and "incomplete" in m for m in refusals(caplog))


def test_connection_that_sends_nothing_is_closed(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited(head_timeout=0.3)
    with connect(server) as sock:
        assert read_until_closed(sock) == b""
    assert any("no request within" in m for m in refusals(caplog))


def test_connection_cap_refuses_with_a_log_line_then_recovers(
    limited: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = limited(max_connections=3, keepalive_timeout=60)
    held = [socket.create_connection((server.host, server.port), timeout=WAIT) for _ in range(3)]
    try:
        for sock in held:  # each answered: the server counts all three
            sock.sendall(GET)
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        with connect(server) as extra:
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert any(
            "refused connection" in m and "3 connections open" in m for m in refusals(caplog)
        )
    finally:
        held.pop().close()
        for sock in held:
            sock.close()
    # Closed connections free their places.
    deadline = time.monotonic() + WAIT
    while True:
        with connect(server) as sock:
            sock.sendall(GET)
            try:
                if read_response(sock).startswith(b"HTTP/1.1 200 "):
                    break
            except ConnectionError:
                pass
        assert time.monotonic() < deadline, "the server kept refusing after connections closed"
        time.sleep(0.05)


def test_default_cap_leaves_file_descriptors_for_files() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = ConnectionLimits().connection_cap()
    assert 16 <= cap < soft or soft == resource.RLIM_INFINITY
    assert ConnectionLimits(max_connections=7).connection_cap() == 7
