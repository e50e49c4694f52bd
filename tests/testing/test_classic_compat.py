"""The classic command-list servers' API, used as their README and code document it.

Each test is written as a user of the classic servers would write it (only the import
changes); where wirelab differs on purpose, the test also shows how to get the classic
behaviour back.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
from collections.abc import Iterator
from typing import cast

import pytest
import requests

from wirelab import UsageError
from wirelab.testing import (
    RECEIVE,
    AsyncioCommandServer,
    CommandServer,
    GenericServer,
    OneShotServer,
    TestingSocket,
    TestTCPServer,
)
from wirelab.testing._command_async import ClassicAsyncioCommandServer

pytestmark = pytest.mark.usefixtures("no_leaks")  # tests/conftest.py

HTTP_HELLO = "HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nhello world"


def recv_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def ask(port: int, request: bytes) -> bytes:
    """Send ``request``, then read the whole answer (the server closes after its script)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(request)
        return recv_all(client)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


# -- the README ------------------------------------------------------------------------


def test_readme_first_example_port_at_once_then_stop(session: requests.Session) -> None:
    srvr = CommandServer([RECEIVE, HTTP_HELLO])
    r = session.get(f"http://127.0.0.1:{srvr.port}/hello", timeout=10)
    assert "hello world" in r.text
    srvr.stop()


def test_readme_received_is_a_list_of_chunks(session: requests.Session) -> None:
    srvr = CommandServer([20, HTTP_HELLO])
    session.get(f"http://127.0.0.1:{srvr.port}/hello", timeout=10)
    srvr.stop()
    assert None not in srvr.received  # so the README's b"".join(srvr.received) works
    allReceived = b"".join(x for x in srvr.received if x)
    assert b"GET" in allReceived
    assert srvr.received_bytes.startswith(b"GET /hello")  # wirelab's view of every byte


def test_received_has_none_for_an_eof_read() -> None:
    srvr = CommandServer([RECEIVE, RECEIVE, RECEIVE, "bye"])
    with socket.create_connection(("127.0.0.1", srvr.port), timeout=5) as client:
        client.sendall(b"one")
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == b"bye"
    srvr.stop()
    assert srvr.received == [b"one", None, None]
    assert b"".join(x for x in srvr.received if x) == b"one"


def test_readme_asyncio_server_feeds_the_given_reader_from_sync_code(
    session: requests.Session,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        reader = asyncio.StreamReader(loop=loop)
        # AsyncioCommandServer([20, HTTP_HELLO], reader=reader, loop=loop), typed:
        srvr = cast(
            ClassicAsyncioCommandServer,
            AsyncioCommandServer([20, HTTP_HELLO], reader=reader, loop=loop),
        )
        assert isinstance(srvr, ClassicAsyncioCommandServer)  # a thread, fed through loop
        r = session.get(f"http://127.0.0.1:{srvr.port}/hello", timeout=10)
        assert r.text == "hello world"
        srvr.stop()
        dataReceivedByServer = loop.run_until_complete(reader.read())
        assert b"GET /hello" in dataReceivedByServer
    finally:
        loop.close()


@pytest.mark.asyncio
async def test_classic_asyncio_server_in_a_running_loop() -> None:
    reader = asyncio.StreamReader()
    srvr = cast(
        ClassicAsyncioCommandServer,
        AsyncioCommandServer([5, "ok"], loop=asyncio.get_running_loop(), reader=reader),
    )
    try:
        client_reader, writer = await asyncio.open_connection("127.0.0.1", srvr.port)
        writer.write(b"hello")
        assert await client_reader.read() == b"ok"
        assert await reader.read() == b"hello"  # fed, then EOF, by the server thread
        writer.close()
        await writer.wait_closed()
    finally:
        srvr.stop()


def test_a_subclass_in_the_classic_form_is_refused_not_ignored() -> None:
    class Mine(AsyncioCommandServer):
        pass

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(UsageError, match="ClassicAsyncioCommandServer"):
            Mine([RECEIVE], loop=loop, reader=asyncio.StreamReader(loop=loop))
    finally:
        loop.close()


def test_readme_one_shot_server_quits_after_one_connection() -> None:
    srvr = OneShotServer([RECEIVE, "once"])
    assert ask(srvr.port, b"x") == b"once"
    srvr.wait()
    assert srvr.STOPPED
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srvr.port), timeout=5).close()


# -- int reads, counters, flags, printing ------------------------------------------------


@pytest.mark.parametrize(("exact", "first"), [(False, b"a" * 30), (True, b"a" * 20)])
def test_int_reads_at_least_n_unless_exact(exact: bool, first: bytes) -> None:
    srvr = CommandServer([20, "x", RECEIVE], exact=exact)
    with socket.create_connection(("127.0.0.1", srvr.port), timeout=5) as client:
        client.sendall(b"a" * 30)  # one segment
        assert client.recv(1) == b"x"
        client.shutdown(socket.SHUT_WR)
        recv_all(client)
    srvr.stop()
    assert srvr.received[0] == first
    assert srvr.received_bytes == b"a" * 30


def test_zero_reads_at_least_one_byte_as_the_classic_receive() -> None:
    srvr = CommandServer([0, "x"])
    assert ask(srvr.port, b"q") == b"x"
    srvr.stop()
    assert srvr.received == [b"q"]


def test_num_bytes_sent_and_stopped_flag() -> None:
    srvr = CommandServer([RECEIVE, "hello", b" world"])
    assert not CommandServer.STOPPED
    assert ask(srvr.port, b"?") == b"hello world"
    srvr.stop()
    assert srvr.numBytesSent == 11
    assert (srvr.STOPPED, CommandServer.STOPPED, TestTCPServer.STOPPED) == (True, True, True)
    other = CommandServer([])  # a new server resets the class-level flag
    assert (CommandServer.STOPPED, srvr.STOPPED) == (False, True)
    other.stop()


def test_verbose_prints_server_lines_and_default_is_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for verbose in (True, False):
        srvr = CommandServer([RECEIVE, "hi"], verbose=verbose)
        assert ask(srvr.port, b"abc") == b"hi"
        srvr.stop()
        lines = capsys.readouterr().out.splitlines()
        if not verbose:
            assert lines == []
            continue
        assert lines[0] == "SERVER: initialized"
        assert "SERVER: received some 3 bytes" in lines
        assert "SERVER: sent 2 bytes" in lines
        assert lines[-1].startswith("SERVER: closing socket connection ")
        assert lines[-1].endswith(" after 2 bytes")


# -- subclassing -------------------------------------------------------------------------


def test_with_received_data_and_at_eof_hooks() -> None:
    events: list[object] = []

    class Recording(CommandServer):
        def withReceivedData(self, data: bytes | None) -> None:
            events.append(data)

        def atEOF(self, conn: socket.socket) -> None:
            events.append(("eof", conn.getsockname()[1] == self.port))

    srvr = Recording([RECEIVE, "ok", RECEIVE])
    with socket.create_connection(("127.0.0.1", srvr.port), timeout=5) as client:
        client.sendall(b"ping")
        assert client.recv(2) == b"ok"
        client.shutdown(socket.SHUT_WR)
        recv_all(client)
    srvr.stop()
    assert events == [b"ping", None, ("eof", True)]


def test_test_tcp_server_runs_a_custom_server_method() -> None:
    class Echo(TestTCPServer):
        def server(self, sock: socket.socket | None, conn: socket.socket, count: int) -> None:
            data = conn.recv(100)
            conn.sendall(b"%d:" % count + data)
            conn.close()

    srvr = Echo()
    assert [ask(srvr.port, b"abc") for _ in range(2)] == [b"0:abc", b"1:abc"]
    srvr.stop()


def test_stop_wakes_a_custom_server_blocked_on_its_client() -> None:
    class Waits(TestTCPServer):
        def server(self, sock: socket.socket | None, conn: socket.socket, count: int) -> None:
            conn.recv(100)  # the client never sends: stop() must still end this

    srvr = Waits()
    with socket.create_connection(("127.0.0.1", srvr.port), timeout=5):
        srvr.stop()


def test_generic_server_runs_commands() -> None:
    srvr = GenericServer([RECEIVE, "generic"])
    assert ask(srvr.port, b"?") == b"generic"
    srvr.stop()


# -- TestingSocket -----------------------------------------------------------------------


def test_testing_socket_records_calls_and_data() -> None:
    srvr = CommandServer([RECEIVE, "ok"])
    sock = TestingSocket()
    try:
        sock.connect(("127.0.0.1", srvr.port))
        sock.send(b"GET ")
        sock.sendall(b"/ HTTP/1.0\r\n\r\n")
        assert select.select([sock], [], [], 5)[0] == [sock]  # a true socket
        assert b"GET" in sock._data["data_out"], "ok"
        assert sock._data["send_calls"] < 3, "too many calls"
        assert sock._data["sendall_calls"] < 3, "too many calls"
        assert (sock._data["send_calls"], sock._data["sendall_calls"]) == (1, 1)
    finally:
        sock.close()
        srvr.stop()


@pytest.mark.parametrize("trigger", ["byte-me", b"byte-me"])
def test_testing_socket_break_on_fires_every_time(trigger: str | bytes) -> None:
    srvr = CommandServer([RECEIVE])
    with socket.create_connection(("127.0.0.1", srvr.port), timeout=5) as plain:
        sock = TestingSocket(sock=plain)  # takes over the connected socket
        try:
            sock.breakOn(trigger, OSError(errno.EPIPE, "gotcha"))
            sock.sendall(b"fine ")
            for _ in range(2):
                with pytest.raises(OSError, match="gotcha") as info:
                    sock.sendall(b"byte-me")
                assert info.value.errno == errno.EPIPE
            with pytest.raises(OSError, match="gotcha"):
                sock.send(b"later")
            assert sock._data["data_out"] == b"fine byte-mebyte-melater"
            assert sock._data["sendall_calls"] == 3 and sock._data["send_calls"] == 1
        finally:
            sock.close()
    srvr.stop()
    assert srvr.received_bytes == b"fine "
