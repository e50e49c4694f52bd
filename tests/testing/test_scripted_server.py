"""ScriptedServer (threads): listening, scripts per connection, errors, join/stop, leaks."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from wirelab import NetworkError, ProtocolError, TimeoutError, TruncatedError, UsageError
from wirelab.framing import DelimiterCodec, Event, LengthPrefixCodec, StreamEncoder
from wirelab.testing._scripted import (
    Close,
    Expect,
    ExpectEOF,
    ExpectFrame,
    ExpectStream,
    Recv,
    RecvExactly,
    RecvUntil,
    RecvUntilEOF,
    Reset,
    ScriptedServer,
    ScriptError,
    Send,
    SendFrame,
    Sleep,
    Stall,
    Step,
)

HAS_IPV6 = socket.has_ipv6
try:
    with socket.socket(socket.AF_INET6) as _probe:
        _probe.bind(("::1", 0))
except OSError:
    HAS_IPV6 = False


def connect(server: ScriptedServer, timeout: float = 5.0) -> socket.socket:
    if server.path is not None:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(server.path)
        return sock
    return socket.create_connection(server.address, timeout=timeout)


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail if a test leaves threads or file descriptors behind."""
    threads = set(threading.enumerate())
    fds = open_fds() if os.path.isdir("/proc/self/fd") else None
    yield
    assert set(threading.enumerate()) - threads == set()
    if fds is not None:
        assert open_fds() == fds


# -- listening -------------------------------------------------------------------------


def test_ping_pong_and_transcript(no_leaks: None) -> None:
    script = [Expect(b"PING\r\n"), Send(b"PONG\r\n")]
    with ScriptedServer(script) as server, connect(server) as client:
        assert server.host == "127.0.0.1"
        assert server.address == ("127.0.0.1", server.port)
        assert server.path is None
        client.sendall(b"PING\r\n")
        assert recv_all(client) == b"PONG\r\n"
        server.join()
    (transcript,) = server.transcripts
    assert transcript.received == b"PING\r\n"
    assert transcript.sent == b"PONG\r\n"
    assert "server closed the connection" in str(transcript)
    assert server.accepted == 1
    assert server.errors == []


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_ipv6(no_leaks: None) -> None:
    with ScriptedServer([Send(b"six")], host="::1") as server:
        assert server.host == "::1"
        assert "[::1]" in repr(server)
        with socket.create_connection(server.address, timeout=5) as client:
            assert recv_all(client) == b"six"


def test_unix_socket_in_a_temporary_directory(no_leaks: None) -> None:
    with ScriptedServer([Expect(b"hi"), Send(b"there")], unix=True) as server:
        path = server.path
        assert path is not None and os.path.exists(path)
        with pytest.raises(UsageError, match="Unix socket"):
            _ = server.address
        with pytest.raises(UsageError, match="Unix socket"):
            _ = server.port
        with pytest.raises(UsageError, match="Unix socket"):
            _ = server.host
        with connect(server) as client:
            client.sendall(b"hi")
            assert recv_all(client) == b"there"
        server.join()
    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))


def test_unix_socket_at_a_given_path(tmp_path: os.PathLike[str], no_leaks: None) -> None:
    path = os.path.join(os.fspath(tmp_path), "s.sock")
    with ScriptedServer([Send(b"x")], unix=path) as server:
        assert server.path == path
        with connect(server) as client:
            assert recv_all(client) == b"x"
    assert not os.path.exists(path)


def test_address_before_start_is_a_usage_error() -> None:
    server = ScriptedServer([Send(b"x")])
    assert "not started" in repr(server)
    with pytest.raises(UsageError, match="started"):
        _ = server.address
    with pytest.raises(UsageError, match="before start"):
        server.join()
    server.stop()  # harmless


def test_start_twice_is_a_usage_error(no_leaks: None) -> None:
    with ScriptedServer([]) as server, pytest.raises(UsageError, match="twice"):
        server.start()


def test_many_servers_at_once(no_leaks: None) -> None:
    servers = [ScriptedServer([Send(b"%d" % n)]).start() for n in range(20)]
    try:
        assert len({s.port for s in servers}) == 20
        for n, server in enumerate(servers):
            with connect(server) as client:
                assert recv_all(client) == b"%d" % n
    finally:
        for server in servers:
            server.stop()


def test_start_and_stop_are_fast(no_leaks: None) -> None:
    """Stop interrupts a connection waiting for the client, a stalled one and a sleeping
    one. Typically start ~0.2 ms and stop ~0.3 ms; the bounds are generous for slow CI."""
    starts, stops = [], []
    for last in (Expect(b"never"), Stall(), Sleep(60)):
        t0 = time.perf_counter()
        server = ScriptedServer([Send(b"r"), last]).start()
        starts.append(time.perf_counter() - t0)
        with connect(server) as client:
            assert client.recv(1) == b"r"  # the script has reached its last step
            t0 = time.perf_counter()
            server.stop()
            stops.append(time.perf_counter() - t0)
    assert max(starts) < 0.5
    assert max(stops) < 0.5


# -- receiving steps --------------------------------------------------------------------


def test_receiving_steps_consume_exactly_what_they_say(no_leaks: None) -> None:
    script = [
        RecvExactly(3),
        RecvUntil(b"\r\n"),
        Expect(b"X"),
        Recv(),
        RecvUntilEOF(),
        Send(b"done"),
    ]
    with ScriptedServer(script) as server, connect(server) as client:
        client.sendall(b"abc" + b"line\r\n" + b"X")
        # Recv takes whatever comes next; wait for it to be consumed via the reply ordering
        client.sendall(b"rest")
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == b"done"
        server.join()
    assert server.transcripts[0].received == b"abcline\r\nXrest"


def test_expect_variants(no_leaks: None) -> None:
    def is_even_length(data: bytes) -> bool:
        return len(data) % 2 == 0

    script = [
        Expect(prefix=b"GET ", until=b"\r\n"),
        Expect(regex=rb"Host: [a-z.]+", until=b"\r\n"),
        Expect(predicate=is_even_length, size=4),
        Expect(prefix=b"Z"),
        ExpectEOF(),
        Send(b"ok"),
    ]
    with ScriptedServer(script) as server, connect(server) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: example.org\r\nabcd")
        client.sendall(b"Z")
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == b"ok"
        server.join()


def run_failing(script: list[Step], client_bytes: bytes) -> ScriptError:
    with ScriptedServer(script) as server, connect(server) as client:
        client.sendall(client_bytes)
        with pytest.raises(ScriptError) as info:
            server.join()
    return info.value


def test_mismatch_reports_offset_and_transcript(no_leaks: None) -> None:
    error = run_failing([Expect(b"HELLO world\n"), Send(b"never")], b"HELLx")
    assert isinstance(error, AssertionError)
    assert isinstance(error.__cause__, ProtocolError)
    message = str(error)
    assert "connection #1" in message
    assert "step 1 Expect(b'HELLO world\\n')" in message
    assert "first mismatching byte at offset 4: expected 0x4f, got 0x78" in message
    assert "actual   (5 bytes so far)" in message
    assert "00000000  48 45 4c 4c 78" in message  # the transcript's hexdump
    assert error.connection == 1
    assert error.step_index == 0
    assert error.transcript.received == b"HELLx"


def test_mismatch_later_in_the_stream_shows_the_stream_offset(no_leaks: None) -> None:
    error = run_failing([RecvExactly(16), Expect(b"ABCD")], b"0123456789abcdefABXD")
    assert "offset 2 (stream offset 18)" in str(error)


@pytest.mark.parametrize(
    ("step", "sent", "fragment"),
    [
        (Expect(prefix=b"GET ", until=b"\n"), b"PUT /\n", "other bytes than expected"),
        (Expect(regex=rb"\d+", until=b"\n"), b"12a\n", "do not match"),
        (Expect(predicate=bytes.isdigit, size=3), b"1x3", "predicate bytes.isdigit rejected"),
        (RecvUntil(b"\n", max_bytes=4), b"12345", "no b'\\n' within the first 4 bytes"),
        (ExpectEOF(), b"more", "expected EOF"),
    ],
)
def test_check_failures(step: Step, sent: bytes, fragment: str, no_leaks: None) -> None:
    error = run_failing([step], sent)
    assert isinstance(error.__cause__, ProtocolError)
    assert fragment in str(error)


def test_a_predicate_that_raises_is_the_cause(no_leaks: None) -> None:
    def boom(data: bytes) -> bool:
        raise ValueError(f"bad {data!r}")

    error = run_failing([Expect(predicate=boom, size=1)], b"q")
    assert isinstance(error.__cause__, ValueError)
    assert "ValueError: bad b'q'" in str(error)


def test_expect_timeout(no_leaks: None) -> None:
    error = run_failing([Expect(b"abc", timeout=0.05)], b"a")
    assert isinstance(error.__cause__, TimeoutError)
    assert "timed out waiting for the client" in str(error)


def test_client_closing_early_is_an_error_unless_allowed(no_leaks: None) -> None:
    with ScriptedServer([RecvExactly(10)]) as server:
        with connect(server) as client:
            client.sendall(b"1234")
        with pytest.raises(ScriptError) as info:
            server.join()
    assert isinstance(info.value.__cause__, TruncatedError)
    assert "4 of 10 bytes received" in str(info.value)

    with ScriptedServer([RecvExactly(10)], allow_disconnect=True) as server:
        with connect(server) as client:
            client.sendall(b"1234")
        server.join()
    assert "client went away" in str(server.transcripts[0])


def test_client_reset_is_a_network_error(no_leaks: None) -> None:
    with ScriptedServer([RecvExactly(10)]) as server:
        client = connect(server)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with pytest.raises(ScriptError) as info:
            server.join()
    assert isinstance(info.value.__cause__, NetworkError)


def test_each_error_is_raised_once(no_leaks: None) -> None:
    server = ScriptedServer([Expect(b"a")]).start()
    try:
        with connect(server) as client:
            client.sendall(b"b")
            with pytest.raises(ScriptError):
                server.join()
        server.check()  # already reported
    finally:
        server.stop()


def test_errors_are_raised_on_exit(no_leaks: None) -> None:
    server = ScriptedServer([Expect(b"a"), Send(b"reply")])
    match = "first mismatching byte at offset 0"
    with pytest.raises(ScriptError, match=match), server, connect(server) as client:
        client.sendall(b"b")
        assert recv_all(client) == b""  # the server closed after the failure


def test_an_error_in_the_block_gets_the_server_error_as_a_note(no_leaks: None) -> None:
    server = ScriptedServer([Expect(b"a")])
    with pytest.raises(KeyError) as info, server, connect(server) as client:
        client.sendall(b"b")
        recv_all(client)
        raise KeyError("test failed first")
    assert any("also failed: ScriptError" in note for note in info.value.__notes__)


def test_stop_interrupts_without_error(no_leaks: None) -> None:
    server = ScriptedServer([Send(b"go"), Expect(b"abc"), Send(b"x")]).start()
    with connect(server) as client:  # closed after the stop: its EOF would be an error
        assert client.recv(2) == b"go"
        client.sendall(b"ab")
        server.stop()
    assert "server stopped during step 2" in str(server.transcripts[0])


def test_join_timeout_names_what_is_missing(no_leaks: None) -> None:
    with ScriptedServer(scripts=[[Send(b"1")], [Send(b"2")]]) as server:
        with connect(server) as client:
            assert recv_all(client) == b"1"
        with pytest.raises(TimeoutError, match="1 of 2 expected connections accepted"):
            server.join(0.05)
    server = ScriptedServer([Expect(b"x")]).start()
    with connect(server):
        with pytest.raises(TimeoutError, match="1 still running") as info:
            server.join(0.05)
        server.stop()
    assert "transcript of connection #1" in str(info.value)


# -- several connections -----------------------------------------------------------------


def test_retry_scenario_reset_then_success(no_leaks: None) -> None:
    scripts = [[RecvUntil(b"\n"), Reset()], [Expect(b"req\n"), Send(b"resp\n")]]
    with ScriptedServer(scripts=scripts) as server:
        replies = []
        for _ in range(2):
            with connect(server) as client:
                client.sendall(b"req\n")
                try:
                    replies.append(recv_all(client))
                except ConnectionResetError:
                    replies.append(b"reset")
        server.join()
    assert replies == [b"reset", b"resp\n"]


def test_then_error_reports_the_unexpected_connection(no_leaks: None) -> None:
    with ScriptedServer(scripts=[[Send(b"only")]]) as server:
        for _ in range(2):
            with contextlib.suppress(ConnectionResetError), connect(server) as client:
                recv_all(client)
        with pytest.raises(ScriptError, match="unexpected connection #2"):
            server.join()


def test_then_repeat_last(no_leaks: None) -> None:
    with ScriptedServer(scripts=[[Send(b"a")], [Send(b"b")]], then="repeat-last") as server:
        got = []
        for _ in range(4):
            with connect(server) as client:
                got.append(recv_all(client))
    assert got == [b"a", b"b", b"b", b"b"]


def test_then_refuse_and_one_shot(no_leaks: None) -> None:
    refusing = ScriptedServer(scripts=[[Send(b"a")]], then="refuse")
    one_shot = ScriptedServer([Send(b"a")], one_shot=True)
    assert one_shot.then == "refuse"
    for server in (refusing, one_shot):
        with server:
            with connect(server) as client:
                assert recv_all(client) == b"a"
            server.join()
            with pytest.raises(ConnectionRefusedError):
                connect(server).close()


@pytest.mark.parametrize(("then", "outcome"), [("reset", "reset"), ("close", b"")])
def test_then_reset_or_close(then: str, outcome: object, no_leaks: None) -> None:
    with ScriptedServer(scripts=[[Send(b"a")]], then=then) as server:  # type: ignore[arg-type]
        with connect(server) as client:
            assert recv_all(client) == b"a"
        # An RST right after accept may even beat the client's connect() to completion.
        try:
            with connect(server) as client:
                result: object = recv_all(client)
        except ConnectionResetError:
            result = "reset"
        assert result == outcome
        server.join()


def test_connections_are_served_concurrently(no_leaks: None) -> None:
    script = [RecvUntil(b"\n"), Send(b"ack\n")]
    with ScriptedServer(script) as server, connect(server) as first, connect(server) as second:
        second.sendall(b"2\n")
        assert second.recv(10) == b"ack\n"  # while the first connection's script waits
        first.sendall(b"1\n")
        assert first.recv(10) == b"ack\n"
    assert [t.received for t in server.transcripts] in ([b"1\n", b"2\n"], [b"2\n", b"1\n"])


# -- frames and streams ---------------------------------------------------------------------


def test_frames_with_both_codecs(no_leaks: None) -> None:
    lines = DelimiterCodec(b"\r\n")
    prefix = LengthPrefixCodec(2, "little")
    script = [
        ExpectFrame(b"hello", codec=prefix),
        ExpectFrame(lambda p: p.startswith(b"US"), codec=lines),
        ExpectFrame(codec=lines),
        SendFrame(b"world", codec=prefix),
        SendFrame(b"+OK", codec=lines),
    ]
    with ScriptedServer(script) as server, connect(server) as client:
        client.sendall(prefix.encode(b"hello") + b"USER bob\r\nanything\r\n")
        assert recv_all(client) == b"\x05\x00world+OK\r\n"
        server.join()


def test_oversize_frame_fails_the_connection(no_leaks: None) -> None:
    codec = LengthPrefixCodec(max_frame=4)
    error = run_failing([ExpectFrame(codec=codec)], b"\x00\x00\x00\x05abcde")
    assert isinstance(error.__cause__, ProtocolError)
    assert "exceeds max_frame of 4" in str(error)


def test_expect_stream_decodes_up_to_the_final_frame(no_leaks: None) -> None:
    encoder = StreamEncoder()
    body = encoder.start(seed=7, count=0, params={}) + encoder.end()
    seen: list[Event] = []

    def check(events: list[Event]) -> bool:
        seen.extend(events)
        return True

    with ScriptedServer([ExpectStream(check), Expect(b"after"), Close()]) as server:
        with connect(server) as client:
            client.sendall(body + b"after")
            assert recv_all(client) == b""
        server.join()
    assert [type(e).__name__ for e in seen] == ["StreamStarted", "StreamEnded"]


def test_expect_stream_reports_format_errors(no_leaks: None) -> None:
    error = run_failing([ExpectStream()], b"\x89WLS\r\n\x1a\n" + b"Q\x00\x00\x00\x00")
    assert isinstance(error.__cause__, ProtocolError)
