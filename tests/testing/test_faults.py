"""Every fault in the catalogue, observed by a real client socket on this OS."""

from __future__ import annotations

import errno
import socket
import threading
import time

import pytest

from wirelab.testing._scripted import (
    FAULTS,
    Close,
    Drip,
    Expect,
    HalfClose,
    Recv,
    RecvUntil,
    Reset,
    ScriptedServer,
    Send,
    SendSegments,
    Sleep,
    Stall,
    StopReading,
    refused_address,
)


def connect(server: ScriptedServer, timeout: float = 5.0) -> socket.socket:
    if server.path is not None:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(server.path)
        return sock
    return socket.create_connection(server.address, timeout=timeout)


def test_catalogue_names_every_fault_once() -> None:
    names = [fault.name for fault in FAULTS]
    assert len(names) == len(set(names)) == 10
    assert all(fault.produce and fault.observes for fault in FAULTS)


# -- connection refused -------------------------------------------------------------------


def test_refused_address() -> None:
    with refused_address() as address, pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()


# -- reset ------------------------------------------------------------------------------------


def test_reset_gives_econnreset_on_recv_not_eof() -> None:
    with ScriptedServer([RecvUntil(b"\n"), Reset()]) as server, connect(server) as client:
        client.sendall(b"request\n")
        with pytest.raises(ConnectionResetError) as info:
            client.recv(100)
        assert info.value.errno == errno.ECONNRESET
        server.join()


def test_reset_gives_econnreset_on_send() -> None:
    with ScriptedServer([Expect(b"go"), Reset()]) as server, connect(server) as client:
        client.sendall(b"go")
        server.join()  # the RST has been sent (and, on loopback, delivered)
        with pytest.raises(ConnectionResetError) as info:
            client.send(b"x")
        assert info.value.errno == errno.ECONNRESET


def test_plain_close_is_eof_not_reset() -> None:
    """The contrast that makes Reset necessary: a close sends FIN, the client sees EOF."""
    with ScriptedServer([Send(b"bye"), Close()]) as server, connect(server) as client:
        assert client.recv(100) == b"bye"
        assert client.recv(100) == b""
        server.join()


def test_close_discards_unread_input_so_no_rst_is_sent() -> None:
    """Linux answers a close() with unread input by RST; Close() drains it first."""
    arrived = threading.Event()

    def wait_for_the_client(_: bytes) -> bool:
        return arrived.wait(5)

    script = [Expect(b"a"), Send(b"ok"), Expect(predicate=wait_for_the_client, size=0), Close()]
    with ScriptedServer(script) as server, connect(server) as client:
        client.sendall(b"a")
        assert client.recv(2) == b"ok"
        client.sendall(b"unread by the script")  # queued in the server's kernel buffer
        arrived.set()
        assert client.recv(100) == b""  # EOF, not ConnectionResetError
        server.join()
    assert "discarded 20 unread raw bytes" in str(server.transcripts[0])


def test_reset_right_after_accept_may_fail_the_connect() -> None:
    """The RST can beat the completion of a connect() with a timeout (non-blocking inside)."""
    with ScriptedServer([Reset()]) as server:
        with pytest.raises(ConnectionResetError), connect(server) as client:
            client.recv(100)
        server.join()


def test_reset_on_a_unix_socket() -> None:
    """Unix sockets have no RST: the client gets ECONNRESET only with unread input."""
    with ScriptedServer([Reset()], unix=True) as server, connect(server) as client:
        assert client.recv(100) == b""
    arrived = threading.Event()
    script = [
        Expect(b"a"),
        Send(b"ok"),
        Expect(predicate=lambda _: arrived.wait(5), size=0),
        Reset(),
    ]
    with ScriptedServer(script, unix=True) as server, connect(server) as client:
        client.sendall(b"a")
        assert client.recv(2) == b"ok"
        client.sendall(b"unread")  # a Unix socket delivers at once
        arrived.set()
        with pytest.raises(ConnectionResetError):
            client.recv(100)
        server.join()


# -- half-close -------------------------------------------------------------------------------


def test_half_close_client_reads_eof_and_can_still_send() -> None:
    script = [Send(b"partial answer"), HalfClose(), Expect(b"still here"), Close()]
    with ScriptedServer(script) as server, connect(server) as client:
        assert client.recv(100) == b"partial answer"
        assert client.recv(100) == b""
        client.sendall(b"still here")
        server.join()
    assert server.transcripts[0].received == b"still here"


# -- timeouts ---------------------------------------------------------------------------------


def test_stall_gives_a_client_read_timeout() -> None:
    with ScriptedServer([Stall()]) as server, connect(server, timeout=0.1) as client:
        client.sendall(b"hello?")  # accepted by the kernel, never read
        with pytest.raises(TimeoutError):
            client.recv(100)


def test_sleep_gives_a_late_answer() -> None:
    server = ScriptedServer([Sleep(60), Send(b"late")])
    with server, connect(server, timeout=0.05) as client, pytest.raises(TimeoutError):
        client.recv(100)


def test_stop_reading_blocks_the_clients_sends() -> None:
    """Typically about 2.5 MB are accepted on Linux loopback before the send blocks."""
    with ScriptedServer([Recv(), StopReading()]) as server, connect(server) as client:
        client.sendall(b"x")
        client.setblocking(False)
        accepted = 0
        chunk = b"\0" * 65536
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                accepted += client.send(chunk)
            except BlockingIOError:
                break
        else:
            pytest.fail(f"the client could send {accepted} bytes without blocking")
        client.settimeout(0.05)
        with pytest.raises(TimeoutError):
            client.sendall(chunk)
    assert 0 < accepted < 64 * 1024 * 1024


# -- slow and fragmented reads ----------------------------------------------------------------


def test_drip_gives_slow_small_reads() -> None:
    data = b"0123456789" * 2
    server = ScriptedServer([Drip(data, bytes_per_second=400, chunk=2)])
    with server, connect(server) as client:
        start = time.monotonic()
        reads = []
        while chunk := client.recv(100):
            reads.append(chunk)
        elapsed = time.monotonic() - start
    assert b"".join(reads) == data
    assert elapsed >= (len(data) - 2) / 400 * 0.9  # 9 gaps of 5 ms
    assert len(reads) > 2
    assert max(len(r) for r in reads) < len(data)


def test_send_segments_gives_fragmented_reads() -> None:
    data = b"HEADERbody-of-the-message"
    step = SendSegments(data, sizes=[1, 5, 10], gap=0.03)
    assert step.segments() == [b"H", b"EADER", b"body-of-th", b"e-message"]
    with ScriptedServer([step]) as server, connect(server) as client:
        reads = []
        while chunk := client.recv(100):
            reads.append(chunk)
    assert b"".join(reads) == data
    assert len(reads) >= 2  # each read is one segment unless the client lagged 30 ms
    joined = b""
    for read in reads:  # reads never split a segment: boundaries are segment boundaries
        joined += read
        assert len(joined) in (1, 6, 16, 25)
