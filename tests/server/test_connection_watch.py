"""A stream's client going away, told by wirelab's protocol (``wirelab.server._lost``):
the stream ends at once even while it waits for a file due much later; the watch is let
go when the stream ends, and leaves no reference cycle behind; for another server's
``send`` there is no connection watch (``receive()`` is watched instead)."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from _waiting import wait_for
from wirelab.server._lost import ConnectionWatch, watch_connection
from wirelab.stream import StreamRuntime
from wirelab.testing._live import LiveServer

# Two files 60 s apart: after the first bytes nothing is written for a minute, so only a
# watch of the connection (not a failed write) can end the stream within the test.
_SLOW = urlencode({"count": 2, "min_size": 2, "max_size": 64, "min_interval": 60,
                   "max_interval": 60, "seed": 5})  # fmt: skip


def _recording(runtime: StreamRuntime) -> list[Any]:
    """Record what the runtime's ``watch_connection`` returns from now on."""
    made: list[Any] = []
    original = runtime.watch_connection
    assert original is not None

    def record(send: Any, on_disconnect: Callable[[], object]) -> Any:
        watch = original(send, on_disconnect)
        made.append(watch)
        return watch

    runtime.watch_connection = record
    return made


def _open(server: LiveServer, request: bytes) -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    sock.sendall(request)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sock


def test_a_disconnect_ends_a_waiting_stream_at_once(server: LiveServer) -> None:
    runtime = server.stream_runtime
    made = _recording(runtime)
    sock = _open(server, f"GET /v1/stream?{_SLOW} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_for(lambda: len(runtime.active) == 1)
    sock.close()
    # Well before the first file's write at 60 s could tell the server instead.
    wait_for(lambda: not runtime.active, timeout=10)
    assert runtime.streams_disconnected == 1
    assert runtime.files_sent == 0  # the first file was due in 60 s
    [watch] = made
    assert isinstance(watch, ConnectionWatch) and watch.disconnected


def test_the_watch_is_let_go_when_the_stream_ends(server: LiveServer) -> None:
    runtime = server.stream_runtime
    made = _recording(runtime)
    query = urlencode({"count": 3, "min_size": 2, "max_size": 64, "min_interval": 0,
                     "max_interval": 0})  # fmt: skip
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(f"GET /v1/stream?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert _read_until(sock, b"\r\n0\r\n\r\n").startswith(b"HTTP/1.1 200")
        wait_for(lambda: not runtime.active)
        [watch] = made
        assert isinstance(watch, ConnectionWatch)
        assert watch._protocol.on_lost is None  # nothing is called when it closes later
        # The connection serves the next request (keep-alive), unwatched.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b'"status":"ok"' in _read_until(sock, b"}")
    time.sleep(0.1)  # the connection is lost now: no watch may call back
    assert runtime.streams_disconnected == 0 and not watch.disconnected
    assert runtime.files_sent == 3


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_a_finished_stream_leaves_no_garbage_cycle(server: LiveServer) -> None:
    """Its connection's objects are freed when it ends, not whenever the garbage collector
    runs next (a watch holding a bound method of itself was such a cycle, and it held the
    protocol, the transport and the request with it)."""
    runtime = server.stream_runtime
    query = urlencode({"count": 2, "min_size": 2, "max_size": 64, "min_interval": 0,
                       "max_interval": 0})  # fmt: skip
    gc.collect()
    gc.disable()  # what the streams leave stays unreachable until the collect below
    gc.set_debug(gc.DEBUG_SAVEALL)  # and is kept in gc.garbage to be looked at
    try:
        for _ in range(5):
            with socket.create_connection((server.host, server.port)) as sock:
                sock.sendall(f"GET /v1/stream?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                _read_until(sock, b"\r\n0\r\n\r\n")
        wait_for(lambda: not runtime.active)
        # One more request on a new connection: the loop has finished the streams' tasks.
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            _read_until(sock, b"}")
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert runtime.files_sent == 10
    assert not kinds & {"ConnectionWatch", "GuardedHttpToolsProtocol", "RequestResponseCycle",
                        "_FramedStream", "TCPTransport"}, kinds  # fmt: skip


def test_no_connection_watch_for_another_servers_send() -> None:
    async def send(message: Any) -> None:
        pass

    calls: list[None] = []
    assert watch_connection(send, lambda: calls.append(None)) is None
    assert calls == []
