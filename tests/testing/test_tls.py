"""TLS scripted servers: the throwaway CA, every bad certificate, faults over TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest
import trustme

from wirelab import UsageError
from wirelab.testing._scripted import (
    AsyncScriptedServer,
    BadCert,
    Close,
    Expect,
    HalfClose,
    RecvUntil,
    Reset,
    ScriptedServer,
    ScriptError,
    Send,
    SendSegments,
)


def tls_connect(
    server: ScriptedServer, *, hostname: str = "localhost", context: ssl.SSLContext | None = None
) -> ssl.SSLSocket:
    context = context or server.client_ssl_context()
    if server.path is not None:
        raw = socket.socket(socket.AF_UNIX)
        raw.settimeout(5)
        raw.connect(server.path)
    else:
        raw = socket.create_connection(server.address, timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_tls_conversation(hostname: str) -> None:
    script = [Expect(b"hello\n"), Send(b"world\n")]
    with ScriptedServer(script, tls=True) as server:
        assert isinstance(server.ca, trustme.CA)
        assert server.server_hostname == "localhost"
        with tls_connect(server, hostname=hostname) as client:
            assert client.version() == "TLSv1.3"
            client.sendall(b"hello\n")
            assert read_to_eof(client) == b"world\n"  # close_notify, then FIN
        server.join()
    transcript = server.transcripts[0]
    assert transcript.received == b"hello\n"  # plaintext
    assert "TLS handshake done (TLSv1.3" in str(transcript)


def test_tls_start_is_fast_after_the_first() -> None:
    ScriptedServer([], tls=True).start().stop()  # makes the CA and certificate once
    t0 = time.perf_counter()
    ScriptedServer([], tls=True).start().stop()
    assert time.perf_counter() - t0 < 0.5  # typically well under a millisecond


def test_tls_over_a_unix_socket() -> None:
    server = ScriptedServer([Send(b"unix")], tls=True, unix=True)
    with server, tls_connect(server) as client:
        assert read_to_eof(client) == b"unix"


def test_tls_segments_arrive_as_separate_records() -> None:
    step = SendSegments(b"abcdef", sizes=2, gap=0.03)
    with ScriptedServer([step], tls=True) as server, tls_connect(server) as client:
        reads = []
        while chunk := client.recv(100):
            reads.append(chunk)
    assert b"".join(reads) == b"abcdef"
    assert len(reads) >= 2
    assert all(len(r) % 2 == 0 for r in reads)


def test_tls_half_close() -> None:
    script = [Send(b"first"), HalfClose(), Expect(b"reply"), Close()]
    with ScriptedServer(script, tls=True) as server, tls_connect(server) as client:
        assert client.recv(100) == b"first"
        assert client.recv(100) == b""  # close_notify (TLS 1.3 allows writing after it)
        client.sendall(b"reply")
        server.join()
    assert server.transcripts[0].received == b"reply"


def test_tls_reset() -> None:
    """The RST arrives, but CPython 3.11's ssl module (gh-115627, fixed in later versions)
    reports the ECONNRESET as SSLEOFError, or as b"" with the default suppress_ragged_eofs."""
    with ScriptedServer([RecvUntil(b"\n"), Reset()], tls=True) as server:
        raw = socket.create_connection(server.address, timeout=5)
        context = server.client_ssl_context()
        with context.wrap_socket(
            raw, server_hostname="localhost", suppress_ragged_eofs=False
        ) as client:
            client.sendall(b"x\n")
            with pytest.raises((ConnectionResetError, ssl.SSLEOFError)):
                client.recv(100)


@pytest.mark.asyncio
async def test_async_client_sees_tls_reset_as_connection_reset() -> None:
    async with AsyncScriptedServer([RecvUntil(b"\n"), Reset()], tls=True) as server:
        reader, writer = await asyncio.open_connection(
            server.host, server.port, ssl=server.client_ssl_context(), server_hostname="localhost"
        )
        writer.write(b"x\n")
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()


@pytest.mark.parametrize("bad", list(BadCert))
def test_bad_certificates_fail_verification_with_a_specific_code(bad: BadCert) -> None:
    with ScriptedServer([Send(b"never")], tls=bad) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            tls_connect(server).close()
        assert info.value.verify_code == bad.verify_code
        server.join()  # the server expects the failure: no error
    assert "TLS handshake failed" in str(server.transcripts[0])


def test_wrong_host_passes_without_hostname_checks() -> None:
    with ScriptedServer([Send(b"ok")], tls=BadCert.WRONG_HOST) as server:
        context = server.client_ssl_context()
        context.check_hostname = False
        with tls_connect(server, context=context) as client:
            assert read_to_eof(client) == b"ok"


def test_a_client_that_rejects_a_good_certificate_is_a_server_error() -> None:
    other_ca = trustme.CA()
    context = ssl.create_default_context(cadata=other_ca.cert_pem.bytes().decode())
    with ScriptedServer([Send(b"x")], tls=True) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_connect(server, context=context).close()
        with pytest.raises(ScriptError, match="the TLS handshake failed") as info:
            server.join()
    assert isinstance(info.value.__cause__, ssl.SSLError)


def test_caller_supplied_context() -> None:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(context)
    with ScriptedServer([Send(b"own")], tls=context) as server:
        with pytest.raises(UsageError, match="no throwaway CA"):
            _ = server.ca
        with pytest.raises(UsageError, match="caller-supplied"):
            server.client_ssl_context()
        client_context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
        with tls_connect(server, context=client_context) as client:
            assert read_to_eof(client) == b"own"


def test_plain_server_has_no_tls() -> None:
    with ScriptedServer([]) as server:
        assert server.tls is None
        with pytest.raises(UsageError, match="does not speak TLS"):
            server.client_ssl_context()
        with pytest.raises(UsageError, match="no throwaway CA"):
            _ = server.ca


def test_bad_tls_argument() -> None:
    with pytest.raises(UsageError, match="tls must be"):
        ScriptedServer([], tls="yes")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_async_tls_conversation() -> None:
    async with AsyncScriptedServer([Expect(b"ping"), Send(b"pong")], tls=True) as server:
        reader, writer = await asyncio.open_connection(
            server.host, server.port, ssl=server.client_ssl_context(), server_hostname="localhost"
        )
        writer.write(b"ping")
        assert await reader.read() == b"pong"
        writer.close()
        await writer.wait_closed()
        await server.join()


@pytest.mark.asyncio
async def test_async_bad_certificate() -> None:
    async with AsyncScriptedServer([Send(b"x")], tls=BadCert.EXPIRED) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await asyncio.open_connection(server.host, server.port, ssl=server.client_ssl_context())
        assert info.value.verify_code == 10
        await server.join()
