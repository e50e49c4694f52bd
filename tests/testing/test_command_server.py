"""The command-list fake servers: each command type, shorthand, big payloads, many servers
at once, prompt stop(), errors surfacing in the test, logging, and clients that misbehave.

Synchronisation is always through the conversation itself (a reply, EOF, or ``wait()``),
never through sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from contextlib import ExitStack
from typing import Any

import numpy as np
import pytest

from wirelab import TimeoutError, UsageError
from wirelab.testing._command import RECEIVE, Command, CommandServer, OneShotServer
from wirelab.testing._command_async import AsyncioCommandServer

MiB = 1 << 20
STOP_BOUND = 0.5  # seconds; typically well under 5 ms


pytestmark = pytest.mark.usefixtures("no_leaks")  # tests/conftest.py


def connect(server: CommandServer | AsyncioCommandServer) -> socket.socket:
    return socket.create_connection(server.address, timeout=5)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


def recv_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(MiB):
        data += chunk
    return bytes(data)


def recv_records(server: CommandServer | AsyncioCommandServer, conn: int = 0) -> list[bytes]:
    return [r.data for r in server.transcripts[conn].records if r.direction == "recv"]


def pattern(size: int) -> bytes:
    """Bytes that differ at every 4-byte position, so a lost or repeated chunk shows."""
    return np.arange(size // 4, dtype="<u4").tobytes()


def reset_on_close(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- commands ------------------------------------------------------------------------------


def test_receive_reads_what_arrived_and_send_answers() -> None:
    with CommandServer([RECEIVE, b"pong"]) as server, connect(server) as client:
        client.sendall(b"ping")
        assert recv_all(client) == b"pong"
    assert server.received_bytes == b"ping"


def test_exact_int_reads_exactly_n_and_leaves_the_rest_for_the_next_command() -> None:
    with (
        CommandServer([3, b"A", 2, b"B", RECEIVE], exact=True) as server,
        connect(server) as client,
    ):
        client.sendall(b"abcde")  # one segment: the server must split it itself
        assert recv_exactly(client, 2) == b"AB"
        client.sendall(b"f")
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == b""
    assert recv_records(server) == [b"abc", b"de", b"f"]


def test_int_collects_bytes_over_several_sends() -> None:
    with CommandServer([6, b"done"]) as server, connect(server) as client:
        for piece in (b"ab", b"c", b"def"):
            client.sendall(piece)
        assert recv_all(client) == b"done"
    assert recv_records(server) == [b"abcdef"]


def test_exact_zero_bytes_command_does_nothing() -> None:
    with CommandServer([0, b"x"], exact=True) as server, connect(server) as client:
        assert recv_all(client) == b"x"
    assert server.received_bytes == b""


def test_str_is_sent_as_utf8() -> None:
    with CommandServer(["grüß ☃"]) as server, connect(server) as client:
        assert recv_all(client) == "grüß ☃".encode()


@pytest.mark.parametrize("shorthand", ["reply", b"reply"])
def test_str_or_bytes_instead_of_a_list_means_receive_then_send(shorthand: str | bytes) -> None:
    with CommandServer(shorthand) as server, connect(server) as client:
        assert server.commands == (RECEIVE, b"reply")
        client.sendall(b"hi")
        assert recv_all(client) == b"reply"
    assert server.received_bytes == b"hi"


@pytest.mark.parametrize("bad", [True, -1, 1.5, None, [b"nested"]])
def test_invalid_commands_are_usage_errors(bad: Any) -> None:
    with pytest.raises(UsageError, match="command #2"):
        CommandServer([RECEIVE, bad])


def test_callable_gets_the_connection_socket() -> None:
    seen: list[int] = []

    def half_close(sock: socket.socket) -> None:
        seen.append(sock.fileno())
        sock.shutdown(socket.SHUT_WR)

    with OneShotServer([b"bye", half_close, RECEIVE]) as server:
        with connect(server) as client:
            assert recv_all(client) == b"bye"  # EOF came from the callable, before the close
            client.sendall(b"still heard")
        server.wait()
    assert len(seen) == 1
    assert server.received_bytes == b"still heard"


def test_callable_may_close_the_connection_with_a_reset() -> None:
    with OneShotServer([RECEIVE, reset_on_close, b"never sent"]) as server:
        with connect(server) as client:
            client.sendall(b"x")
            with pytest.raises(ConnectionResetError):
                recv_all(client)
        server.wait()  # closing the socket ended the script; it is not an error
    assert "closed the connection" in str(server.transcripts[0])


# -- payload size ----------------------------------------------------------------------


def test_several_mib_are_sent_completely() -> None:
    payload = pattern(8 * MiB)
    with CommandServer([payload]) as server, connect(server) as client:
        assert recv_all(client) == payload
    assert server.transcripts[0].sent == payload


def test_several_mib_are_received_completely() -> None:
    payload = pattern(8 * MiB)
    with CommandServer([len(payload), b"ok"]) as server, connect(server) as client:
        client.sendall(payload)
        assert recv_all(client) == b"ok"
    assert server.received_bytes == payload


# -- connections -----------------------------------------------------------------------


def test_connections_are_served_one_after_another_with_the_whole_script() -> None:
    with CommandServer([RECEIVE, b"answer"]) as server:
        with connect(server) as first, connect(server) as second:
            second.sendall(b"second")  # waits in the backlog until the first is done
            first.sendall(b"first")
            assert recv_all(first) == b"answer"
            assert recv_all(second) == b"answer"
        assert [t.received for t in server.transcripts] == [b"first", b"second"]
        assert server.received_bytes == b"firstsecond"


def test_twenty_servers_run_at_once() -> None:
    with ExitStack() as stack:
        servers = [stack.enter_context(CommandServer([RECEIVE, f"#{i}"])) for i in range(20)]
        assert len({s.port for s in servers}) == 20
        clients = [stack.enter_context(connect(s)) for s in servers]
        for i, client in enumerate(clients):  # all connected before any is answered
            client.sendall(f"to {i}".encode())
        answers = [recv_all(c) for c in reversed(clients)]
    assert answers == [f"#{i}".encode() for i in reversed(range(20))]
    assert [s.received_bytes for s in servers] == [f"to {i}".encode() for i in range(20)]


def test_address_and_port_at_once() -> None:
    server = CommandServer([])
    assert server.port > 0  # listening from the constructor on, as the classic server
    with server:
        assert server.address == ("127.0.0.1", server.port)
        assert server.port > 0
        assert f"127.0.0.1:{server.port}" in repr(server)


def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with CommandServer("v6", host="::1") as server, connect(server) as client:
        client.sendall(b"?")
        assert recv_all(client) == b"v6"


def test_start_is_idempotent_and_stop_is_final_and_idempotent() -> None:
    server = CommandServer([])
    assert server.start() is server
    with server as same:
        assert same is server and same.start() is server
    server.stop()
    with pytest.raises(UsageError, match="after stop"):
        server.start()


# -- stop() ----------------------------------------------------------------------------


def timed_stop(server: CommandServer) -> float:
    start = time.perf_counter()
    server.stop()
    return time.perf_counter() - start


def test_stop_is_prompt_while_waiting_for_a_connection() -> None:
    server = CommandServer([RECEIVE]).start()
    assert timed_stop(server) < STOP_BOUND


def test_stop_is_prompt_while_waiting_for_data() -> None:
    server = CommandServer([3, b"ack", 1000, b"never"]).start()
    with connect(server) as client:
        client.sendall(b"partial")
        assert recv_exactly(client, 3) == b"ack"  # the server is in the 1000-byte read
        assert timed_stop(server) < STOP_BOUND
        assert recv_all(client) == b""  # the server closed cleanly: EOF, not a reset
    assert server.received_bytes == b"partial"  # what had arrived is kept
    assert "interrupted by stop()" in str(server.transcripts[0])


def test_stop_is_prompt_while_sending_to_a_client_that_does_not_read() -> None:
    server = CommandServer([bytes(32 * MiB)]).start()
    with connect(server) as client:
        client.recv(1)  # the send has started and fills the buffers
        assert timed_stop(server) < STOP_BOUND
    assert 0 < len(server.transcripts[0].sent) < 32 * MiB


def test_stop_closes_waiting_connections_cleanly() -> None:
    # Closing a listener resets the connections in its backlog; stop() accepts and closes
    # them instead, so a client that connected before stop() sees EOF, not a reset.
    server = CommandServer([RECEIVE, b"busy"]).start()
    with connect(server) as first, connect(server) as second:
        server.stop()
        assert recv_all(first) == b""
        assert recv_all(second) == b""
    assert len(server.transcripts) == 2
    assert "not served: the server was stopping" in str(server.transcripts[-1])


def test_stop_closes_the_listening_socket() -> None:
    with CommandServer([]) as server:
        address = server.address
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()


def test_bytes_the_script_did_not_read_are_kept() -> None:
    with CommandServer([2, b"hi"], exact=True) as server, connect(server) as client:
        client.sendall(b"..extra")  # one segment: "extra" waits unread in the server
        assert recv_all(client) == b"hi"
    assert server.received_bytes == b"..extra"
    assert "not read by the script" in str(server.transcripts[0])


# -- errors ----------------------------------------------------------------------------


def boom(sock: socket.socket) -> None:
    raise ValueError("boom in the server")


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


def test_server_error_is_reraised_on_exit_with_a_transcript() -> None:
    with (
        pytest.raises(ValueError, match="boom in the server") as info,
        CommandServer([3, boom]) as server,
        connect(server) as client,
    ):
        client.sendall(b"abc")
        assert recv_all(client) == b""  # the failing connection is closed
    text = notes(info.value)
    assert "command #2 (call boom)" in text
    assert "61 62 63" in text and "|abc|" in text  # hexdump of what was received


def test_error_report_shows_the_end_of_a_long_transcript() -> None:
    commands: list[Command] = [bytes([65 + i]) * 1000 for i in range(20)]
    server = OneShotServer([*commands, boom]).start()
    with connect(server) as client:
        assert len(recv_all(client)) == 20_000
    with pytest.raises(ValueError, match="boom") as info:
        server.stop()
    text = notes(info.value)
    assert "earlier records not shown" in text
    assert "872 more bytes" in text  # each hexdump is cut at 128 bytes
    assert "|TTTTTTTTTTTTTTTT|" in text  # the last send is there
    assert text.count("\n") < 100


def test_server_error_is_reraised_by_check_once() -> None:
    server = OneShotServer([boom]).start()
    with connect(server) as client:
        assert recv_all(client) == b""
    with pytest.raises(ValueError, match="boom"):
        server.wait()
    server.check()  # reported once only
    server.stop()


def test_server_error_is_reraised_on_stop_and_stops_serving() -> None:
    server = CommandServer([boom]).start()
    with connect(server) as client:
        assert recv_all(client) == b""
    with pytest.raises(ValueError, match="boom"):
        server.stop()
    assert len(server.transcripts) == 1


def test_wait_without_max_connections_is_a_usage_error() -> None:
    with CommandServer([]) as server, pytest.raises(UsageError, match="max_connections"):
        server.wait()


# -- clients that go away ------------------------------------------------------------------


def test_client_eof_skips_receives_but_still_gets_its_answer() -> None:
    with CommandServer([100, RECEIVE, b"answer"]) as server, connect(server) as client:
        client.sendall(b"short")
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == b"answer"
    text = str(server.transcripts[0])
    assert "EOF after 5 bytes" in text
    assert "skipped, client sent EOF" in text


def test_client_that_disconnects_early_is_not_an_error_and_the_server_goes_on() -> None:
    with CommandServer([5, b"reply", 5, b"again"]) as server:
        with connect(server) as early:
            early.sendall(b"ab")
        reset_on_close(connect(server))  # straight away, with a reset
        with connect(server) as good:
            good.sendall(b"12345")
            assert recv_exactly(good, 5) == b"reply"
            good.sendall(b"67890")
            assert recv_all(good) == b"again"
    assert len(server.transcripts) == 3
    assert server.received_bytes == b"ab1234567890"


def test_client_reset_while_the_server_sends_is_not_an_error() -> None:
    server = OneShotServer([bytes(32 * MiB), b"never sent"]).start()
    client = connect(server)
    client.recv(1)
    reset_on_close(client)
    server.wait()  # no error: the script just ends
    text = str(server.transcripts[0])
    assert "client went away" in text
    assert "ConnectionResetError" in text or "BrokenPipeError" in text
    server.stop()


# -- OneShotServer ---------------------------------------------------------------------


def test_one_shot_serves_one_connection_then_stops() -> None:
    with OneShotServer([RECEIVE, b"once"]) as server:
        with connect(server) as client:
            client.sendall(b"q")
            assert recv_all(client) == b"once"
        server.wait()
        with pytest.raises(ConnectionRefusedError):
            connect(server).close()
    assert server.received_bytes == b"q"


def test_one_shot_wait_times_out_with_a_wirelab_error() -> None:
    with (
        OneShotServer([RECEIVE]) as server,
        pytest.raises(TimeoutError, match=r"wait\(\) timed out"),
    ):
        server.wait(0.01)  # nobody connects: this cannot finish


# -- verbose -------------------------------------------------------------------------------


def test_verbose_logs_each_command_and_its_bytes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wirelab.testing")
    with CommandServer([RECEIVE, "hello"], verbose=True) as server, connect(server) as client:
        client.sendall(b"ping")
        assert recv_all(client) == b"hello"
    messages = [r.getMessage() for r in caplog.records if r.name == "wirelab.testing"]
    assert any("command #1 (RECEIVE): received 4 bytes b'ping'" in m for m in messages)
    assert any("command #2 (send 5 bytes): sent 5 bytes b'hello'" in m for m in messages)


def test_quiet_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wirelab.testing")
    with CommandServer([RECEIVE, "hello"]) as server, connect(server) as client:
        client.sendall(b"ping")
        assert recv_all(client) == b"hello"
    assert [r for r in caplog.records if r.name == "wirelab.testing"] == []


# -- AsyncioCommandServer ----------------------------------------------------------------


async def aconnect(server: AsyncioCommandServer) -> tuple[asyncio.StreamReader, Any]:
    return await asyncio.open_connection(*server.address)


@pytest.mark.asyncio
async def test_async_script_and_reader() -> None:
    async with AsyncioCommandServer([5, b"pong", RECEIVE]) as server:
        reader, writer = await aconnect(server)
        writer.write(b"ping!")
        assert await server.reader.readexactly(5) == b"ping!"
        assert await reader.readexactly(4) == b"pong"
        writer.write(b"more")
        assert await server.reader.readexactly(4) == b"more"
        writer.close()
        await writer.wait_closed()
        assert await server.reader.read() == b""  # fed EOF when the connection closed
    assert server.received_bytes == b"ping!more"


@pytest.mark.asyncio
async def test_async_each_connection_gets_its_own_reader() -> None:
    async with AsyncioCommandServer([RECEIVE, b"ok"]) as server:
        first_reader = server.reader
        for text in (b"one", b"two"):
            reader, writer = await aconnect(server)
            writer.write(text)
            assert await reader.read() == b"ok"
            writer.close()
            await writer.wait_closed()
            assert await server.reader.read() == text
        assert server.readers[0] is first_reader
        assert len(server.readers) == 2


@pytest.mark.asyncio
async def test_async_large_payloads_and_str() -> None:
    payload = pattern(4 * MiB)
    async with AsyncioCommandServer([len(payload), payload, "☃"]) as server:
        reader, writer = await aconnect(server)
        writer.write(payload)
        assert await reader.readexactly(len(payload)) == payload
        assert await reader.read() == "☃".encode()
        writer.close()
        await writer.wait_closed()
    assert server.received_bytes == payload


@pytest.mark.asyncio
async def test_async_stop_is_prompt_and_keeps_what_arrived() -> None:
    server = await AsyncioCommandServer([1000]).start()
    reader, writer = await aconnect(server)
    writer.write(b"some")
    assert await server.reader.readexactly(4) == b"some"
    start = time.perf_counter()
    await server.stop()
    assert time.perf_counter() - start < STOP_BOUND
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert server.received_bytes == b"some"
    assert server.reader.at_eof()


@pytest.mark.asyncio
async def test_async_error_is_reraised_on_exit_with_a_transcript() -> None:
    async def slow_boom(sock: socket.socket) -> None:
        await asyncio.sleep(0)
        raise ValueError("async boom")

    with pytest.raises(ValueError, match="async boom") as info:
        async with AsyncioCommandServer([2, slow_boom]) as server:
            reader, writer = await aconnect(server)
            writer.write(b"hi")
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
    assert "|hi|" in notes(info.value)


@pytest.mark.asyncio
async def test_async_early_disconnect_and_wait() -> None:
    commands: list[Command] = [10, b"reply"]
    async with AsyncioCommandServer(commands, max_connections=2) as server:
        _, writer = await aconnect(server)
        writer.write(b"abc")
        writer.transport.abort()  # reset, mid-script
        reader, writer = await aconnect(server)
        writer.write(b"0123456789")
        assert await reader.read() == b"reply"
        writer.close()
        await writer.wait_closed()
        await server.wait()
    assert [t.received for t in server.transcripts] == [b"abc", b"0123456789"]


@pytest.mark.asyncio
async def test_async_wait_times_out_and_verbose_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wirelab.testing")
    async with AsyncioCommandServer([RECEIVE], verbose=True, max_connections=1) as server:
        with pytest.raises(TimeoutError):
            await server.wait(0.01)
        reader, writer = await aconnect(server)
        writer.write(b"x")
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await server.wait()
    assert any("received 1 bytes b'x'" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_async_listens_at_once_and_start_is_idempotent() -> None:
    server = AsyncioCommandServer([])
    assert server.port > 0 and server.reader is server.readers[0]
    assert await server.start() is server
    await server.stop()
    await server.stop()
    with pytest.raises(UsageError, match="after stop"):
        await server.start()


def test_the_tests_own_error_wins_and_the_server_error_becomes_a_note() -> None:
    def explode(conn: socket.socket) -> None:
        raise KeyError("server side")

    with (
        pytest.raises(ValueError, match="test side") as info,
        OneShotServer([explode]) as server,
    ):
        with socket.create_connection(server.address, timeout=5):
            # Let the server fail first, without asking for its error (that would raise
            # it here): wait for its thread to end.
            assert server._thread is not None
            server._thread.join(5)
        raise ValueError("test side")
    assert any("KeyError" in note for note in getattr(info.value, "__notes__", []))
