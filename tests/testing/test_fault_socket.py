"""FaultSocket against real local servers: recording, send triggers (also split across
calls), short reads, EOF, resets, connect failures, select/asyncio compatibility, and
install_fault_socket() scoping and restoring.
"""

from __future__ import annotations

import asyncio
import errno
import select
import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from wirelab import UsageError
from wirelab.testing._command import RECEIVE, CommandServer, OneShotServer
from wirelab.testing._fault_install import install_fault_socket
from wirelab.testing._fault_socket import FaultSocket

REAL_SOCKET = socket.socket
REAL_SOCKETPAIR = socket.socketpair


@pytest.fixture(autouse=True)
def socket_restored(no_leaks: None) -> Iterator[None]:
    """socket.socket is always put back (and, by ``no_leaks``, no thread or descriptor
    outlives a test)."""
    yield
    assert socket.socket is REAL_SOCKET
    assert socket.socketpair is REAL_SOCKETPAIR


def connected(server: CommandServer) -> FaultSocket:
    sock = FaultSocket()
    sock.settimeout(5)
    sock.connect(server.address)
    return sock


def recv_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


PAYLOAD = bytes(range(256)) * 4  # 1 KiB the server sends


# -- recording ---------------------------------------------------------------------------


def test_records_traffic_and_counts_calls() -> None:
    with OneShotServer([5, PAYLOAD]) as server, connected(server) as sock:
        assert sock.send(b"hel") == 3
        sock.sendall(b"lo")
        assert recv_all(sock) == PAYLOAD
        assert (sock.sent, sock.received) == (b"hello", PAYLOAD)
        assert (sock.send_calls, sock.sendall_calls, sock.connect_calls) == (1, 1, 1)
        server.wait()
    assert server.received_bytes == b"hello"


def test_sendmsg_and_sendfile_are_seen(tmp_path: Path) -> None:
    if not hasattr(socket.socket, "sendmsg"):
        pytest.skip("no sendmsg() on this platform")
    file = tmp_path / "body"
    file.write_bytes(b"file body")
    with OneShotServer([100]) as server:
        with connected(server) as sock, file.open("rb") as f:
            sock.break_on(b"secret", BrokenPipeError)
            assert sock.sendmsg([b"msg ", b"parts "]) == 10
            assert sock.sendfile(f) == 9  # through send(), not os.sendfile()
            with pytest.raises(BrokenPipeError):
                sock.sendmsg([b"sec", b"ret"])
            assert sock.sent == b"msg parts file body"
            assert sock.send_calls >= 3
        server.wait()
    assert server.received_bytes == b"msg parts file body"


def test_is_a_real_socket_for_select_and_selectors() -> None:
    with CommandServer([RECEIVE, b"ready"]) as server, connected(server) as sock:
        assert isinstance(sock, socket.socket)
        assert select.select([sock], [], [], 0) == ([], [], [])
        sock.sendall(b"go")
        assert select.select([sock], [], [], 5)[0] == [sock]
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            assert [key.fileobj for key, _ in sel.select(5)] == [sock]
        assert recv_all(sock) == b"ready"


def test_makefile_and_recv_into_are_recorded() -> None:
    with CommandServer([b"line one\nline two\n"]) as server, connected(server) as sock:
        with sock.makefile("rb") as f:
            assert f.readline() == b"line one\n"
            assert f.read() == b"line two\n"
        assert sock.received == b"line one\nline two\n"


# -- send triggers ---------------------------------------------------------------------------


def test_trigger_raises_before_anything_of_the_call_is_sent() -> None:
    with OneShotServer([100]) as server:
        with connected(server) as sock:
            sock.break_on(b"BAD", BrokenPipeError)
            sock.sendall(b"ok ")
            with pytest.raises(BrokenPipeError, match="trigger b'BAD'") as info:
                sock.sendall(b"then BAD data")
            assert info.value.errno == errno.EPIPE
            assert (sock.sent, sock.sendall_calls) == (b"ok ", 2)
        server.wait()
    assert server.received_bytes == b"ok "  # the peer saw nothing of the failing call


def test_trigger_split_across_calls_fires_in_the_call_completing_it() -> None:
    with OneShotServer([100]) as server:
        with connected(server) as sock:
            sock.break_on(b"SPLIT", ConnectionResetError)
            sock.sendall(b"..SP")
            assert sock.send(b"L") == 1
            with pytest.raises(ConnectionResetError) as info:
                sock.send(b"IT..")
            assert info.value.errno == errno.ECONNRESET
            assert sock.sent == b"..SPL"
        server.wait()
    assert server.received_bytes == b"..SPL"


def test_trigger_once_lets_a_retry_through() -> None:
    with OneShotServer([6, b"ok"]) as server, connected(server) as sock:
        sock.break_on(b"req", ConnectionAbortedError)
        with pytest.raises(ConnectionAbortedError):
            sock.sendall(b"req #1")
        sock.sendall(b"req #1")  # disarmed
        assert recv_all(sock) == b"ok"
        server.wait()
    assert server.received_bytes == b"req #1"


def test_trigger_not_once_breaks_every_later_send() -> None:
    error = OSError(errno.EIO, "custom")
    with CommandServer([]) as server, connected(server) as sock:
        sock.break_on(b"x", error, once=False)
        for data in (b"x", b"harmless", b"more"):
            with pytest.raises(OSError, match="custom") as info:
                sock.send(data)
            assert info.value is error
        with pytest.raises(OSError, match="custom"):
            sock.sendall(b"y")
        assert (sock.sent, sock.send_calls, sock.sendall_calls) == (b"", 3, 1)


def test_bad_fault_settings_are_usage_errors() -> None:
    with FaultSocket() as sock:
        with pytest.raises(UsageError):
            sock.break_on(b"", BrokenPipeError)
        with pytest.raises(UsageError):
            sock.break_on(b"x", "not an exception")  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            sock.short_reads(0)
        with pytest.raises(UsageError):
            sock.eof_after(-1)
        with pytest.raises(UsageError):
            sock.fail_connect("nope")  # type: ignore[arg-type]


# -- receive faults ------------------------------------------------------------------------


def test_short_reads_need_a_client_that_reassembles() -> None:
    with CommandServer([PAYLOAD]) as server, connected(server) as sock:
        sock.short_reads(7)
        pieces = []
        while chunk := sock.recv(4096):
            assert len(chunk) <= 7
            pieces.append(chunk)
        assert b"".join(pieces) == PAYLOAD
        assert len(pieces) == -(-len(PAYLOAD) // 7)


def test_short_reads_apply_to_recv_into() -> None:
    with CommandServer([PAYLOAD]) as server, connected(server) as sock:
        sock.short_reads(100)
        buffer = bytearray(4096)
        assert sock.recv_into(buffer) == 100
        assert buffer[:100] == PAYLOAD[:100]


def test_eof_after_delivers_exactly_n_bytes_then_eof() -> None:
    with CommandServer([PAYLOAD, RECEIVE]) as server, connected(server) as sock:
        sock.eof_after(300)
        assert recv_all(sock) == PAYLOAD[:300]
        assert sock.recv(10) == b""  # and stays at EOF
        assert sock.received == PAYLOAD[:300]


def test_reset_after_raises_econnreset() -> None:
    with CommandServer([PAYLOAD]) as server, connected(server) as sock:
        sock.reset_after(10)
        data = bytearray()
        with pytest.raises(ConnectionResetError) as info:
            while True:
                data += sock.recv(4096)
        assert info.value.errno == errno.ECONNRESET
        assert bytes(data) == PAYLOAD[:10] == sock.received


# -- connect faults ------------------------------------------------------------------------


def test_fail_connect_refused() -> None:
    with CommandServer([]) as server, FaultSocket() as sock:
        sock.fail_connect("refused")
        with pytest.raises(ConnectionRefusedError) as info:
            sock.connect(server.address)
        assert info.value.errno == errno.ECONNREFUSED
        assert sock.connect_ex(server.address) == errno.ECONNREFUSED
        assert sock.connect_calls == 2
    assert server.transcripts == []  # the server never saw a connection


def test_fail_connect_timeout() -> None:
    with CommandServer([]) as server, FaultSocket() as sock:
        sock.fail_connect("timeout")
        with pytest.raises(socket.timeout) as info:
            sock.connect(server.address)
        assert isinstance(info.value, TimeoutError)
        assert info.value.errno == errno.ETIMEDOUT
        assert sock.connect_ex(server.address) == errno.ETIMEDOUT


def test_connect_ex_succeeds_normally() -> None:
    with CommandServer([b"hi"]) as server, FaultSocket() as sock:
        assert sock.connect_ex(server.address) == 0
        assert recv_all(sock) == b"hi"


# -- asyncio ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_asyncio_open_connection_with_a_fault_socket() -> None:
    with CommandServer([5, PAYLOAD]) as server:
        sock = FaultSocket().short_reads(10)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, server.address)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"hello")
        assert await reader.read() == PAYLOAD
        writer.close()
        await writer.wait_closed()
        assert (sock.sent, sock.received) == (b"hello", PAYLOAD)
        assert sock.send_calls >= 1


@pytest.mark.asyncio
async def test_asyncio_sees_injected_eof_while_the_peer_stays_quiet() -> None:
    # The server sends 100 bytes and then waits: without the read side being shut down
    # when the threshold is reached, the event loop would never call recv() again.
    with CommandServer([PAYLOAD[:100], RECEIVE]) as server:
        sock = FaultSocket().eof_after(100)
        sock.connect(server.address)
        reader, writer = await asyncio.open_connection(sock=sock)
        assert await reader.read() == PAYLOAD[:100]
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_asyncio_sees_injected_reset() -> None:
    with CommandServer([PAYLOAD[:100], RECEIVE]) as server:
        sock = FaultSocket().reset_after(40)
        sock.connect(server.address)
        reader, writer = await asyncio.open_connection(sock=sock)
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()
        assert sock.received == PAYLOAD[:40]


@pytest.mark.asyncio
async def test_asyncio_trigger_breaks_the_writer() -> None:
    with OneShotServer([RECEIVE]) as server:
        sock = FaultSocket().break_on(b"QUIT", BrokenPipeError)
        sock.connect(server.address)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"QUIT")
        with pytest.raises(ConnectionError):  # asyncio 3.11 says "Connection lost" here
            await writer.drain()
        with pytest.raises(BrokenPipeError, match="QUIT"):  # the injected exception
            await reader.read()
        writer.close()
        with pytest.raises(BrokenPipeError):
            await writer.wait_closed()
        server.wait()
    assert server.received_bytes == b""


# -- install_fault_socket ----------------------------------------------------------------------


def test_install_replaces_tcp_sockets_only() -> None:
    with install_fault_socket() as sockets:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            assert type(tcp) is FaultSocket
            assert type(udp) is REAL_SOCKET
            a, b = socket.socketpair()
            with a, b:
                assert type(a) is type(b) is REAL_SOCKET
            assert isinstance(udp, socket.socket) and isinstance(tcp, socket.socket)
            assert issubclass(FaultSocket, socket.socket)
        assert sockets == [tcp]


def test_install_configures_sockets_from_create_connection() -> None:
    with (
        CommandServer([RECEIVE, b"answer"]) as server,
        install_fault_socket(lambda s: s.short_reads(2)) as sockets,
        socket.create_connection(server.address, timeout=5) as sock,
    ):
        sock.sendall(b"q")
        assert recv_all(sock) == b"answer"
        (fault,) = sockets
        assert fault.received == b"answer"
        assert fault.sent == b"q"


def test_install_keeps_asyncio_working_inside_the_block() -> None:
    async def talk(address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"hello")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return data

    with CommandServer([5, b"from server"]) as server:
        with install_fault_socket(lambda s: s.short_reads(3)) as sockets:
            assert asyncio.run(talk(server.address)) == b"from server"
        (fault,) = sockets  # the loop's own socketpair stayed real
        assert fault.sent == b"hello"
        assert fault.received == b"from server"


def test_install_connect_failure_reaches_asyncio() -> None:
    async def attempt(address: tuple[str, int]) -> None:
        await asyncio.open_connection(*address)

    with (
        CommandServer([]) as server,
        install_fault_socket(lambda s: s.fail_connect("refused")),
        pytest.raises(ConnectionRefusedError),
    ):
        asyncio.run(attempt(server.address))
    assert server.transcripts == []


def test_install_restores_on_exception_and_closes_on_configure_error() -> None:
    with pytest.raises(KeyError), install_fault_socket():
        assert socket.socket is not REAL_SOCKET
        raise KeyError("boom")
    assert socket.socket is REAL_SOCKET

    def bad(sock: FaultSocket) -> None:
        raise ValueError("configure failed")

    with install_fault_socket(bad) as sockets, pytest.raises(ValueError):
        socket.socket()  # the half-made socket is closed, or the fd check would fail
    assert sockets == []


def test_install_leaves_other_threads_alone_unless_asked() -> None:
    made: list[type] = []

    def make() -> None:
        with socket.socket() as s:
            made.append(type(s))

    for all_threads, expected in ((False, REAL_SOCKET), (True, FaultSocket)):
        with install_fault_socket(all_threads=all_threads):
            thread = threading.Thread(target=make)
            thread.start()
            thread.join()
        assert made.pop() is expected


def test_install_nests_and_may_be_exited_out_of_order() -> None:
    with ExitStack() as stack:
        outer_cm = install_fault_socket(lambda s: s.short_reads(1))
        inner_cm = install_fault_socket(lambda s: s.short_reads(2))
        outer = stack.enter_context(outer_cm)
        inner = inner_cm.__enter__()
        with socket.socket() as s:
            assert s in inner and s not in outer  # the innermost claims it
        outer_cm.__exit__(None, None, None)  # exit the outer one first
        stack.pop_all()
        assert socket.socket is not REAL_SOCKET  # the inner one is still active
        with socket.socket() as s:
            assert s in inner
        inner_cm.__exit__(None, None, None)
    assert socket.socket is REAL_SOCKET
    assert socket.socketpair is REAL_SOCKETPAIR


def test_accepted_sockets_stay_real_and_servers_started_inside_work() -> None:
    with install_fault_socket() as sockets:
        with (
            CommandServer([RECEIVE, b"ok"]) as server,  # its listener stays real
            socket.create_connection(server.address, timeout=5) as client,
        ):
            client.sendall(b"x")
            assert recv_all(client) == b"ok"
        with (
            socket.create_server(("127.0.0.1", 0)) as listener,
            socket.create_connection(listener.getsockname()) as client,
        ):
            conn, _ = listener.accept()
            with conn:
                assert type(conn) is REAL_SOCKET
        assert len(sockets) == 3  # two clients and the create_server listener


def test_trigger_split_right_at_the_start_of_the_connection() -> None:
    # Fewer bytes sent before the trigger than its length: the tail must not go negative.
    with OneShotServer([100]) as server:
        with connected(server) as sock:
            sock.break_on(b"abcdef", BrokenPipeError)
            sock.sendall(b"abc")
            with pytest.raises(BrokenPipeError):
                sock.sendall(b"def")
            assert sock.sent == b"abc"
        server.wait()


def test_servers_imported_first_inside_the_block_keep_real_sockets() -> None:
    # A fresh interpreter, so the server modules are imported only inside the block.
    code = """
import socket
from wirelab.testing._fault_install import install_fault_socket
with install_fault_socket() as sockets:
    from wirelab.testing import ScriptedServer, Send, Close, ExpectServer
    with ScriptedServer(script=[Send(b"hi"), Close()]) as server:
        with socket.create_connection(server.address, timeout=5) as client:
            assert client.recv(2) == b"hi"
        server.join(5)
    server2 = ExpectServer()
    server2.close()
    assert len(sockets) == 1, sockets  # only the client
print("ok")
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
