"""ExpectServer without pytest's help: every client kind, matcher, framing and message.

Clients here are real sockets: blocking ones in the test thread or in a thread, asyncio
streams, a subprocess. Nothing sleeps to synchronize: a client waits for the server's
bytes, and the test waits for the script with ``join_sync()``/``await join()``. Timeouts
are only used where a timeout is the point, and then nothing can arrive meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing

import pytest

from wirelab import NetworkError, UsageError
from wirelab.framing import DelimiterCodec, LengthPrefixCodec
from wirelab.testing._expect import (
    DEFAULT_TIMEOUT,
    ExpectationFailed,
    ExpectServer,
    ExpectServerFactory,
)

CONNECT_TIMEOUT = "Timed out waiting for client to connect."
DISCONNECT_TIMEOUT = (
    "Timed out waiting for client to disconnect. Remember to call `writer.close()`."
)
SECOND_CONNECTION = "While waiting for client to disconnect a second connection was attempted."
RESET = "Connection was reset. Did client close writer prematurely?"
SHORT = 0.05  # for steps that must time out: nothing is sent meanwhile


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("wirelab-tcpserver")]
    assert leaked == []


@pytest.fixture
def srv() -> Iterator[ExpectServer]:
    """A started server; closed (without end-of-test checks) after the test."""
    with closing(ExpectServer(timeout=5.0).start()) as server:
        yield server


def connect(server: ExpectServer) -> socket.socket:
    return socket.create_connection(server.address, timeout=10)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


def failure_of(server: ExpectServer) -> ExpectationFailed:
    with pytest.raises(ExpectationFailed) as info:
        server.join_sync()
    return info.value


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def is_digits(data: bytes) -> bool:
    return data.isdigit()


def explode(data: bytes) -> bool:
    raise ValueError("boom")


# -- clients of every kind ---------------------------------------------------------------


def test_blocking_client_in_the_test_thread(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"ping")
    srv.send_bytes(b"pong")
    srv.expect_disconnect()
    with connect(srv) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"pong"
    srv.join_sync()
    (transcript,) = srv.transcripts
    assert transcript.received == b"ping"
    assert transcript.sent == b"pong"


def test_client_in_a_thread_and_script_after_the_client(srv: ExpectServer) -> None:
    answers: list[bytes] = []

    def client() -> None:
        with connect(srv) as sock:
            sock.sendall(b"Hel")
            sock.sendall(b"lo")
            answers.append(recv_exactly(sock, 2))

    thread = threading.Thread(target=client)
    thread.start()
    srv.expect_connect()  # may come after the connection: it still counts
    srv.expect_bytes(b"Hello")  # bytes split across segments are reassembled
    srv.send_bytes(b"ok")
    srv.expect_disconnect()
    srv.join_sync()
    thread.join()
    assert answers == [b"ok"]


@pytest.mark.asyncio
async def test_asyncio_client_with_async_context_manager() -> None:
    async with ExpectServer() as server:
        server.expect_connect()
        server.expect_frame(b"Client hello")
        server.send_frame(b"Server hello")
        server.expect_disconnect()
        reader, writer = await asyncio.open_connection(None, server.service_port)
        writer.write(frame(b"Client hello"))
        assert await reader.readexactly(16) == frame(b"Server hello")
        writer.close()
        await writer.wait_closed()
        await server.join()


SUBPROCESS_CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as sock:
    sock.sendall(b"HELO from a subprocess\\r\\n")
    data = b""
    while not data.endswith(b"\\n"):
        data += sock.recv(100)
    sys.stdout.write(data.decode())
"""


def test_subprocess_client(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(regex=rb"HELO [^\r]*\r\n")
    srv.send_bytes(b"250 hi\n")
    srv.expect_disconnect()
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_CLIENT, str(srv.service_port)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == b"250 hi\n"
    srv.join_sync()


def test_large_transfers_both_ways(srv: ExpectServer) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    srv.expect_connect()
    srv.expect_bytes(predicate=lambda data: data == blob, size=len(blob))
    srv.send_bytes(blob)
    srv.expect_disconnect()
    with connect(srv) as sock:
        sock.sendall(blob)
        assert recv_exactly(sock, len(blob)) == blob
    srv.join_sync()


# -- matchers -----------------------------------------------------------------------------


def test_prefix_regex_and_predicate_matchers_pass(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(prefix=b"GET ", size=8)
    srv.expect_bytes(prefix=b"HTTP")
    srv.expect_bytes(regex=rb"/1\.[01]\r\n")
    srv.expect_bytes(regex=rb"[a-z]+", size=3)
    srv.expect_bytes(predicate=is_digits, size=3)
    srv.expect_disconnect()
    with connect(srv) as sock:
        sock.sendall(b"GET /abcHTTP/1.1\r\nxyz123")
    srv.join_sync()


@pytest.mark.parametrize(
    ("kwargs", "sent", "message", "offset"),
    [
        (
            {"prefix": b"GET "},
            b"POST",
            "Expected to read bytes starting with b'GET ' but actually read b'POST'",
            0,
        ),
        (
            {"prefix": b"GET ", "size": 6},
            b"GEX /x",
            "Expected to read 6 bytes starting with b'GET ' but actually read b'GEX /x'",
            2,
        ),
        (
            {"regex": rb"[a-z]+", "size": 3},
            b"ab1",
            "Expected to read 3 bytes matching regex b'[a-z]+' but actually read b'ab1'",
            None,
        ),
        (
            {"predicate": is_digits, "size": 3},
            b"12a",
            "Expected to read 3 bytes accepted by is_digits but actually read b'12a'",
            None,
        ),
    ],
)
def test_matcher_mismatch_messages(
    srv: ExpectServer, kwargs: dict[str, object], sent: bytes, message: str, offset: int | None
) -> None:
    srv.expect_connect()
    srv.expect_bytes(**kwargs)  # type: ignore[arg-type]
    with connect(srv) as sock:
        sock.sendall(sent)
        exc = failure_of(srv)
    assert str(exc) == message
    assert exc.mismatch_offset == offset


def test_regex_timeout_message(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"Y")
    srv.expect_bytes(regex=rb"X+\n", timeout=SHORT)
    with connect(srv) as sock:
        sock.sendall(b"YZZ")
        exc = failure_of(srv)
    assert str(exc) == r"Timed out waiting for bytes matching regex b'X+\\n'"
    assert "received and not consumed: 2 bytes at stream offset 1" in exc.details


def test_predicate_that_raises(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(predicate=explode, size=1)
    with connect(srv) as sock:
        sock.sendall(b"x")
        exc = failure_of(srv)
    assert str(exc) == "The predicate of expect_bytes(predicate=explode, size=1) raised " + repr(
        ValueError("boom")
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.expect_bytes(), "give exactly one of .* \\(got none\\)"),
        (lambda s: s.expect_bytes(b"a", prefix=b"a"), "got expected, prefix"),
        (lambda s: s.expect_bytes(predicate=is_digits), "needs size="),
        (lambda s: s.expect_bytes(b"ab", size=2), "cannot be combined with exact"),
        (lambda s: s.expect_bytes(prefix=b"abc", size=2), "shorter than the prefix"),
        (lambda s: s.expect_bytes(regex="a"), "must be a bytes pattern"),
        (lambda s: s.expect_bytes(regex=re.compile("a")), "must be a bytes pattern"),
        (lambda s: s.expect_bytes(prefix="a"), "prefix must be bytes"),
        (lambda s: s.expect_bytes("text"), "expected bytes, not str"),
        (lambda s: s.expect_bytes(predicate=3, size=1), "predicate must be callable"),
        (lambda s: s.expect_bytes(regex=b"a", size=-1), "size must be an int >= 0"),
        (lambda s: s.expect_frame(regex=b"a", size=1), "unexpected keyword argument 'size'"),
        (lambda s: s.expect_bytes(b"a", timeout=0), "timeout must be a number"),
        (lambda s: s.expect_connect(timeout=float("nan")), "timeout must be a number"),
        (lambda s: s.expect_disconnect(timeout=True), "timeout must be a number"),
        (lambda s: s.send_bytes("text"), "data must be bytes"),
        (lambda s: s.send_frame(None), "payload must be bytes"),
        (lambda s: s.expect_frame(b"x", codec=object()), "codec must have encode"),
    ],
)
def test_usage_errors_are_raised_at_once(srv: ExpectServer, call: object, message: str) -> None:
    with pytest.raises((UsageError, TypeError), match=message):
        call(srv)  # type: ignore[operator]


# -- timeouts, EOF, mismatch details -----------------------------------------------------


def test_timeout_reports_what_arrived_and_where_it_differs(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"xx")
    srv.expect_bytes(b"Hello, world!", timeout=SHORT)
    with connect(srv) as sock:
        sock.sendall(b"xxHelp")  # one segment: "Help" is buffered when the second step runs
        exc = failure_of(srv)
    assert str(exc) == "Timed out waiting for b'Hello, world!'"
    assert "received and not consumed: 4 bytes at stream offset 2" in exc.details
    assert "|Help|" in exc.details
    assert "first mismatching byte: offset 3 (stream offset 5)" in exc.details
    assert "(timeout 0.05 s)" in exc.details


def test_mismatch_details_have_hexdumps_offsets_and_transcript(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"xx")
    srv.expect_bytes(b"Bonjour")
    with connect(srv) as sock:
        sock.sendall(b"xxBonGour")
        exc = failure_of(srv)
    assert str(exc) == "Expected to read b'Bonjour' but actually read b'BonGour'"
    assert exc.mismatch_offset == 3
    details = exc.details
    assert f"tcpserver on 127.0.0.1:{srv.service_port}: step 3, expect_bytes(b'Bonjour')" in details
    assert "expected (7 bytes):\n  00000000  42 6f 6e 6a 6f 75 72" in details
    assert "actual read (7 bytes, at stream offset 2):\n  00000000  42 6f 6e 47 6f 75 72" in details
    assert (
        "first mismatching byte: offset 3 of the read (stream offset 5): expected 0x6a, got 0x47"
        in details
    )
    assert "transcript of connection #1 from 127.0.0.1:" in details
    assert "<- client sent 9 bytes" in details
    assert "step 3 FAILED" in details


def test_eof_before_the_expected_bytes(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"Hello")
    with connect(srv) as sock:
        sock.sendall(b"Hel")
    exc = failure_of(srv)
    assert (
        str(exc)
        == "Expected to read b'Hello' but only read b'Hel' before the connection was closed."
    )


def test_connection_reset_while_expecting_bytes(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.send_bytes(b"unread")
    srv.expect_bytes(b"never")
    with connect(srv) as sock:
        select.select([sock], [], [], 10)  # the server's bytes sit unread in our buffer...
    exc = failure_of(srv)  # ...so closing resets the connection
    assert str(exc) == RESET
    assert "the server had sent 6 bytes on it" in exc.details


# -- frames and codecs -------------------------------------------------------------------


def test_frames_default_codec(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_frame(b"Hello")
    srv.expect_frame(prefix=b"GET")
    srv.expect_frame(regex=rb"\d+")
    srv.expect_frame(predicate=is_digits)
    srv.expect_frame(b"")
    srv.send_frame(b"Hola")
    srv.expect_disconnect()
    with connect(srv) as sock:
        sock.sendall(frame(b"Hello") + frame(b"GET /") + frame(b"42") + frame(b"7") + frame(b""))
        assert recv_exactly(sock, 8) == b"\x00\x00\x00\x04Hola"
    srv.join_sync()


@pytest.mark.parametrize(
    ("kwargs", "sent", "message"),
    [
        (
            {"expected_payload": b"Bonjour"},
            frame(b"Goodbye, world"),
            "Expected to get frame b'Bonjour' but actually got frame b'Goodbye, world'",
        ),
        (
            {"prefix": b"GET"},
            frame(b"PUT x"),
            "Expected to get frame starting with b'GET' but actually got frame b'PUT x'",
        ),
        (
            {"regex": rb"\d+"},
            frame(b"12a"),
            "Expected to get frame matching regex b'\\\\d+' but actually got frame b'12a'",
        ),
        (
            {"predicate": is_digits},
            frame(b"x"),
            "Expected to get frame accepted by is_digits but actually got frame b'x'",
        ),
    ],
)
def test_frame_mismatch_messages(
    srv: ExpectServer, kwargs: dict[str, object], sent: bytes, message: str
) -> None:
    srv.expect_connect()
    srv.expect_frame(**kwargs)  # type: ignore[arg-type]
    with connect(srv) as sock:
        sock.sendall(sent)
        exc = failure_of(srv)
    assert str(exc) == message


def test_frame_timeout_and_eof_messages(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_frame(b"Goodbye, world", timeout=SHORT)
    with connect(srv):
        assert str(failure_of(srv)) == "Timed out waiting for frame b'Goodbye, world'"

    with closing(ExpectServer().start()) as server:
        server.expect_connect()
        server.expect_frame(b"Client hello 2")
        connect(server).close()  # a clean EOF: pytest-tcpclient reads it as an empty frame
        message = "Expected to get frame b'Client hello 2' but actually got frame b''"
        assert str(failure_of(server)) == message

    with closing(ExpectServer().start()) as server:
        server.expect_connect()
        server.expect_frame(b"abc")
        with connect(server) as sock:
            sock.sendall(frame(b"abc")[:5])
        assert str(failure_of(server)) == (
            "Expected to get frame b'abc' but the connection was closed in the middle of a "
            "frame (5 bytes)."
        )


def test_other_codecs_per_call_and_per_server() -> None:
    little16 = LengthPrefixCodec(2, "little", max_frame=10)
    with ExpectServer(codec=DelimiterCodec(b"\r\n")) as server:
        server.expect_connect()
        server.expect_frame(b"HELO")
        server.send_frame(b"250 OK")
        server.expect_frame(b"ping", codec=little16)
        server.send_frame(b"pong", codec=little16)
        server.expect_frame(b"x", codec=little16)
        with connect(server) as sock:
            sock.sendall(b"HELO\r\n" + b"\x04\x00ping")
            assert recv_exactly(sock, 8) == b"250 OK\r\n"
            assert recv_exactly(sock, 6) == b"\x04\x00pong"
            sock.sendall(b"\x2c\x01")  # length 300 > max_frame
            exc = failure_of(server)
    assert str(exc) == (
        "Expected to get frame b'x' but got an invalid frame: frame length 300 exceeds "
        "max_frame of 10"
    )


class _BrokenCodec:
    def encode(self, payload: bytes) -> bytes:
        return payload

    def next_frame(self, buffer: bytes) -> tuple[bytes, int] | None:
        if not buffer:
            return None
        raise ValueError(f"cannot parse {buffer!r}")


def test_a_third_party_codec_error_becomes_a_protocol_error(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_frame(b"x", codec=_BrokenCodec())
    with connect(srv) as sock:
        sock.sendall(b"?")
        exc = failure_of(srv)
    assert str(exc) == (
        "Expected to get frame b'x' but got an invalid frame: ValueError: cannot parse b'?'"
    )


# -- several connections -----------------------------------------------------------------


def test_sequential_connections(srv: ExpectServer) -> None:
    for word in (b"one", b"two", b"three"):
        srv.expect_connect()
        srv.expect_bytes(word)
        srv.send_bytes(word.upper())
        srv.expect_disconnect()
    for word in (b"one", b"two", b"three"):
        with connect(srv) as sock:
            sock.sendall(word)
            assert recv_exactly(sock, len(word)) == word.upper()
    srv.join_sync()
    assert [t.received for t in srv.transcripts] == [b"one", b"two", b"three"]
    srv.stop_sync()


def test_concurrent_connections_through_handles(srv: ExpectServer) -> None:
    first = srv.expect_connect()
    second = srv.expect_connect()
    second.expect_bytes(b"B")  # steps run in script order, whatever the connection
    first.expect_bytes(b"A")
    first.send_bytes(b"a")
    second.send_bytes(b"b")
    first.expect_disconnect()
    second.expect_disconnect()
    assert srv.connections == (first, second)
    assert (first.number, second.number) == (1, 2)
    assert srv.connections[0].transcript is None  # not claimed: the client has not connected
    with connect(srv) as one, connect(srv) as two:
        one.sendall(b"A")
        two.sendall(b"B")
        assert (recv_exactly(one, 1), recv_exactly(two, 1)) == (b"a", b"b")
    srv.join_sync()
    assert first.transcript is not None and first.transcript.received == b"A"
    assert second.transcript is not None and second.transcript.received == b"B"
    srv.stop_sync()


def test_a_second_connection_while_waiting_for_disconnect(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_disconnect()
    with connect(srv), connect(srv):
        exc = failure_of(srv)
    assert str(exc) == SECOND_CONNECTION
    assert "connection #2 from 127.0.0.1:" in exc.details


def test_missing_expect_connect(srv: ExpectServer) -> None:
    srv.expect_bytes(b"Hello, world")
    assert (
        str(failure_of(srv)) == "Missing `expect_connect()` before `expect_bytes(b'Hello, world')`"
    )
    calls: list[tuple[Callable[[ExpectServer], None], str]] = [
        (lambda s: s.send_bytes(b"x"), "send_bytes(b'x')"),
        (lambda s: s.send_frame(b"x"), "send_frame(b'x')"),
        (lambda s: s.disconnect(), "disconnect()"),
    ]
    for call, label in calls:
        with closing(ExpectServer().start()) as server:
            call(server)
            assert str(failure_of(server)) == f"Missing `expect_connect()` before `{label}`"


def test_expect_disconnect_without_a_connection(srv: ExpectServer) -> None:
    srv.expect_disconnect()
    message = "Client is not connected. Did you forget to call `asyncio.open_connection`?"
    assert str(failure_of(srv)) == message
    with closing(ExpectServer().start()) as server, connect(server):
        server.expect_disconnect()
        message = "Missing `expect_connect()` before `expect_disconnect()`"
        assert str(failure_of(server)) == message


# -- disconnects -------------------------------------------------------------------------


def test_server_disconnect(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.send_bytes(b"bye")
    srv.disconnect()
    srv.expect_disconnect()  # a connection the server closed counts as closed
    with connect(srv) as sock:
        assert recv_exactly(sock, 3) == b"bye"
        assert sock.recv(1) == b""
        srv.join_sync()
    srv.stop_sync()


def test_steps_after_disconnect_fail(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.disconnect()
    srv.send_bytes(b"x")
    with connect(srv):
        message = "Cannot send_bytes(b'x'): the server closed the connection with `disconnect()`."
        assert str(failure_of(srv)) == message
    with closing(ExpectServer().start()) as server, connect(server):
        server.expect_connect()
        server.disconnect()
        server.expect_bytes(b"x")
        message = "Cannot expect_bytes(b'x'): the server closed the connection with `disconnect()`."
        assert str(failure_of(server)) == message


def test_expect_disconnect_timeout(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_disconnect(timeout=SHORT)
    with connect(srv):
        assert str(failure_of(srv)) == DISCONNECT_TIMEOUT


def test_expect_disconnect_with_unread_client_bytes(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_disconnect()
    with connect(srv) as sock:
        sock.sendall(b"Hello")
    exc = failure_of(srv)
    message = "Received unexpected data while waiting for client to disconnect. Data is b'Hello'."
    assert str(exc) == message


def test_client_closing_with_unread_server_bytes_is_a_reset(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.send_bytes(b"Hola!")
    srv.expect_disconnect()
    with connect(srv) as sock:
        select.select([sock], [], [], 10)  # arrived, not read
    assert str(failure_of(srv)) == RESET


def test_bytes_sent_after_the_client_left_are_a_reset(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_disconnect()
    connect(srv).close()
    srv.join_sync()  # a clean close...
    srv.send_bytes(b"too late")
    srv.expect_disconnect()
    assert str(failure_of(srv)) == RESET  # ...then the client's kernel refuses our bytes


def test_a_write_error_that_asyncio_reports_late_is_still_a_reset(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_disconnect()
    connect(srv).close()
    srv.join_sync()
    # Run back to back: the first send makes the client's kernel reset the connection, the
    # second one fails on that (consuming the socket's error), and asyncio delivers the
    # error to the protocol only on its next loop iteration.
    srv.send_bytes(b"one")
    srv.send_bytes(b"two")
    srv.expect_disconnect()
    assert str(failure_of(srv)) == RESET


def test_half_closed_client_still_gets_its_answer(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"request")
    srv.expect_disconnect()  # EOF on the client's sending side is enough
    srv.send_bytes(b"answer")
    with connect(srv) as sock:
        sock.sendall(b"request")
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 6) == b"answer"
        srv.join_sync()
    srv.stop_sync()


# -- internal errors ---------------------------------------------------------------------


def test_an_unexpected_error_in_a_step_fails_the_script(
    srv: ExpectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_write(self: object, data: bytes, note: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("wirelab.testing._expect_core.Conn.write", broken_write)
    srv.expect_connect()
    srv.send_bytes(b"x")
    with connect(srv):
        exc = failure_of(srv)
    assert str(exc) == "Internal error in tcpserver while running send_bytes(b'x'): " + repr(
        RuntimeError("boom")
    )
    assert "Traceback" in exc.details


def test_an_error_in_the_server_loop_fails_the_script(srv: ExpectServer) -> None:
    def explode() -> None:
        raise RuntimeError("in the loop")

    assert srv._loop is not None
    srv._loop.call_soon_threadsafe(explode)  # before join's barrier: the same FIFO
    exc = failure_of(srv)
    assert re.fullmatch(r"Internal error in tcpserver: Exception in callback .*explode.*", str(exc))
    assert "RuntimeError: in the loop" in exc.details


# -- join, stop, lifecycle ---------------------------------------------------------------


def test_a_failure_is_raised_once_and_stops_the_script(srv: ExpectServer) -> None:
    srv.expect_connect()
    srv.expect_bytes(b"Hello")
    srv.send_bytes(b"not sent")
    with connect(srv) as sock:
        sock.sendall(b"Adios")
        failed_before = srv.join_already_failed
        assert str(failure_of(srv)) == "Expected to read b'Hello' but actually read b'Adios'"
        assert (failed_before, srv.join_already_failed) == (False, True)
        srv.expect_bytes(b"dropped too")
        srv.join_sync()  # pytest-tcpclient: later joins return quietly
    srv.stop_sync()  # and the end-of-test checks are skipped
    assert srv.transcripts[0].sent == b""


@pytest.mark.asyncio
async def test_blocking_calls_are_refused_in_an_event_loop(srv: ExpectServer) -> None:
    with pytest.raises(UsageError, match=r"use `await join\(\)` here"):
        srv.join_sync()
    with pytest.raises(UsageError, match=r"use `await stop\(\)` here"):
        srv.stop_sync()
    await srv.join()
    await srv.stop()


def test_stop_runs_the_end_of_test_checks() -> None:
    server = ExpectServer(timeout=SHORT).start()
    server.expect_connect()
    with connect(server), pytest.raises(ExpectationFailed, match=re.escape(DISCONNECT_TIMEOUT)):
        server.stop_sync()
    with pytest.raises(UsageError, match="tcpserver is stopped"):
        server.expect_connect()
    server.stop_sync()  # idempotent
    server.close()


def test_stop_reports_a_connection_nobody_expected() -> None:
    server = ExpectServer().start()
    connect(server).close()
    message = "Unexpected connection #1: no `expect_connect()` was declared for it."
    with pytest.raises(ExpectationFailed, match=re.escape(message)):
        server.stop_sync()


def test_unused_server_passes_the_end_of_test_checks() -> None:
    with ExpectServer() as server:
        assert server.service_port > 0


def test_context_manager_reports_the_body_error_only() -> None:
    with pytest.raises(ZeroDivisionError), ExpectServer(timeout=SHORT) as server:
        server.expect_connect()
        1 / 0  # noqa: B018


def test_context_manager_runs_the_checks_on_a_clean_exit() -> None:
    with (
        pytest.raises(ExpectationFailed, match=re.escape(CONNECT_TIMEOUT)),
        ExpectServer(timeout=SHORT) as server,
    ):
        server.expect_connect()


@pytest.mark.asyncio
async def test_async_context_manager_checks_and_own_errors() -> None:
    with pytest.raises(ExpectationFailed, match=re.escape(CONNECT_TIMEOUT)):
        async with ExpectServer(timeout=SHORT) as server:
            server.expect_connect()
    with pytest.raises(ZeroDivisionError):
        async with ExpectServer(timeout=SHORT) as server:
            server.expect_connect()
            1 / 0  # noqa: B018


def test_lifecycle_misuse() -> None:
    server = ExpectServer()
    with pytest.raises(UsageError, match="not started"):
        server.service_port  # noqa: B018
    with pytest.raises(UsageError, match="not started"):
        server.expect_connect()
    with pytest.raises(UsageError, match="not started"):
        server.join_sync()
    server.close()  # nothing to close
    server = ExpectServer().start()
    with pytest.raises(UsageError, match="already started"):
        server.start()
    server.close()
    server.close()


def test_port_in_use(srv: ExpectServer) -> None:
    with pytest.raises(NetworkError, match=r"cannot listen on 127\.0\.0\.1"):
        ExpectServer(port=srv.service_port).start()


@pytest.mark.asyncio
async def test_port_in_use_async(srv: ExpectServer) -> None:
    with pytest.raises(NetworkError, match=r"cannot listen on 127\.0\.0\.1"):
        await ExpectServerFactory()(port=srv.service_port)


def test_close_releases_a_waiting_join() -> None:
    server = ExpectServer(timeout=30).start()
    server.expect_connect()  # would wait 30 s
    joined: list[str] = []

    def join() -> None:
        server.join_sync()  # close() drops the pending steps: nothing to report
        joined.append("returned")

    thread = threading.Thread(target=join)
    thread.start()
    server.close()
    thread.join(10)
    assert joined == ["returned"]


def test_a_reported_failure_stays_reported_after_close() -> None:
    server = ExpectServer(timeout=SHORT).start()
    server.expect_connect()
    failure_of(server)
    server.close()
    server.join_sync()  # already reported: quiet, also once closed


def test_names_and_reprs(srv: ExpectServer) -> None:
    assert srv.port == srv.service_port == srv.address[1]
    assert repr(srv) == f"<ExpectServer tcpserver 127.0.0.1:{srv.port}>"
    handle = srv.expect_connect()
    assert repr(handle) == f"<ExpectedConnection #1 of {srv!r}>"
    assert repr(ExpectServer()) == "<ExpectServer tcpserver not listening>"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be"),
        ({"timeout": None}, "timeout must be"),
        ({"failure_type": ValueError}, "failure_type must be a subclass"),
        ({"codec": "lines"}, "codec must have"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ExpectServer(**kwargs)  # type: ignore[arg-type]


class CustomFailure(ExpectationFailed):
    pass


def test_failure_type_is_what_join_raises(srv: ExpectServer) -> None:
    with closing(ExpectServer(failure_type=CustomFailure, timeout=SHORT).start()) as server:
        server.expect_connect()
        with pytest.raises(CustomFailure, match=re.escape(CONNECT_TIMEOUT)):
            server.join_sync()
    assert DEFAULT_TIMEOUT == 1.0


def test_factory_stops_every_server_and_raises_the_first_failure() -> None:
    factory = ExpectServerFactory(timeout=SHORT)
    good, bad, worse = factory.start(), factory.start(), factory.start()
    assert factory.servers == (good, bad, worse)
    bad.expect_connect()
    worse.expect_connect()
    with pytest.raises(ExpectationFailed, match=re.escape(CONNECT_TIMEOUT)):
        factory.stop_sync()
    with pytest.raises(UsageError, match="stopped"):
        worse.expect_connect()  # closed although an earlier server failed
    factory.close()


@pytest.mark.asyncio
async def test_factory_async() -> None:
    factory = ExpectServerFactory(timeout=5.0)
    server = await factory(timeout=SHORT)
    assert server.timeout == SHORT
    server.expect_connect()
    with pytest.raises(ExpectationFailed, match=re.escape(CONNECT_TIMEOUT)):
        await factory.stop()
    await factory.stop()
    factory.close()
    with pytest.raises(UsageError, match="timeout must be"):
        ExpectServerFactory(timeout=-1)
