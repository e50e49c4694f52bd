"""A stream's schedule counts from its request's arrival, even when the server is late.

``socket_data_age`` reads the kernel's receive time of a connection's data (Linux
``TCP_INFO``) on real loopback sockets; ``start_time`` turns an age into the stream's
start in loop time; and against a live server whose event loop is held busy while the
request arrives, the first file still comes at its offset after the request, not that
offset after the loop got free.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import Any

import pytest

from wirelab.framing import FileStarted, StreamDecoder
from wirelab.server._arrival import TICK_MARGIN, request_age, socket_data_age
from wirelab.stream._runtime import StreamRuntime
from wirelab.stream._schedule import CATCH_UP_LIMIT, start_time
from wirelab.testing import LiveServer

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="TCP_INFO is Linux's (elsewhere the age is 0)"
)


@linux_only
def test_the_age_of_a_connections_data_is_never_more_than_it_is() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        with client:
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            sent = time.monotonic()
            time.sleep(0.2)  # the request waits in the listen queue, as in a burst
            conn, _ = listener.accept()
            with conn:
                age = socket_data_age(conn)
                elapsed = time.monotonic() - sent
    # Counted in the kernel's ticks (1-10 ms), less one coarse tick: never above the
    # true age, and within two coarse ticks of it.
    assert elapsed - 2 * TICK_MARGIN - 0.005 <= age <= elapsed


@linux_only
def test_fresh_data_has_no_age() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with client, conn:
            client.sendall(b"x")
            conn.recv(1)
            assert socket_data_age(conn) == 0.0


def test_no_age_for_what_is_not_a_tcp_connection() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        assert socket_data_age(sock) == 0.0
    assert socket_data_age(object()) == 0.0

    async def send(message: Any) -> None:  # not uvicorn's cycle
        raise AssertionError("not called")

    assert request_age(send) == 0.0


@pytest.mark.asyncio
async def test_the_start_is_the_requests_arrival_in_loop_time() -> None:
    loop = asyncio.get_running_loop()

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    before = loop.time()
    assert start_time(StreamRuntime(), send) >= before  # no hook: now
    late = StreamRuntime(request_age=lambda send: 0.25)
    t0 = start_time(late, send)
    now = loop.time()
    # 0.25 s before now (the loop's clock and the monotonic clock agree here), never
    # later than now nor more than the age before it.
    assert now - 0.25 - 0.05 <= t0 <= now - 0.25 + 0.05
    assert start_time(StreamRuntime(request_age=lambda send: 0.0), send) >= now
    # A longer wait counts as CATCH_UP_LIMIT: the stream is not owed a burst of files.
    far = start_time(StreamRuntime(request_age=lambda send: 30.0), send)
    assert loop.time() - CATCH_UP_LIMIT - 0.05 <= far <= loop.time() - CATCH_UP_LIMIT + 0.05


@linux_only
def test_a_request_that_waited_keeps_its_schedule(server: LiveServer) -> None:
    # The server's loop is held for 0.25 s while the request arrives (it waits ~0.2 s,
    # below CATCH_UP_LIMIT); the first file is due 0.6 s after the request. Counted from
    # when the loop read the request, it would come 0.8 s or more after the request; it
    # comes at 0.6 s (and never before).
    query = "count=2&min_size=2&max_size=64&min_interval=0.6&max_interval=0.6&seed=5"
    request = f"GET /v1/stream?{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    loop = server.app.state.loop
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        # Blocks the server's event loop, as a burst of work would.
        loop.call_soon_threadsafe(time.sleep, 0.25)
        time.sleep(0.05)  # the loop is in the hold
        sock.sendall(request.encode())
        sent = time.monotonic()
        first_file_at = _first_file_arrival(sock)
    assert CATCH_UP_LIMIT > 0.2
    assert 0.6 - 0.005 <= first_file_at - sent < 0.75


def _first_file_arrival(sock: socket.socket) -> float:
    """When the first ``F`` frame arrived (the chunked body read as it comes)."""
    buffer = b""
    while True:
        data = sock.recv(65536)
        assert data, "the stream ended before its first file"
        now = time.monotonic()
        buffer += data
        _, sep, body = buffer.partition(b"\r\n\r\n")
        # The body so far, decoded afresh: the first file's F frame, once it is in.
        events = StreamDecoder().feed(_dechunk_prefix(body)) if sep else []
        if any(isinstance(event, FileStarted) for event in events):
            return now


def _dechunk_prefix(body: bytes) -> bytes:
    """The complete chunks at the start of a chunked body, joined."""
    out, pos = b"", 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return out
        size = int(body[pos:end], 16)
        if size == 0 or end + 2 + size + 2 > len(body):
            return out
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
