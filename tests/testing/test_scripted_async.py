"""AsyncScriptedServer: the same scripts in the test's event loop, with asyncio clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import pytest

from wirelab import TimeoutError, TruncatedError, UsageError
from wirelab.framing import LengthPrefixCodec
from wirelab.testing._scripted import (
    AsyncScriptedServer,
    Drip,
    Expect,
    ExpectFrame,
    HalfClose,
    RecvUntil,
    Reset,
    ScriptError,
    Send,
    SendFrame,
    SendSegments,
    Sleep,
    Stall,
    StopReading,
)

pytestmark = pytest.mark.asyncio


async def open_client(
    server: AsyncScriptedServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if server.path is not None:
        return await asyncio.open_unix_connection(server.path)
    return await asyncio.open_connection(server.host, server.port)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def current_tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_ping_pong() -> None:
    tasks = current_tasks()
    async with AsyncScriptedServer([Expect(b"PING\r\n"), Send(b"PONG\r\n")]) as server:
        reader, writer = await open_client(server)
        writer.write(b"PING\r\n")
        assert await reader.read() == b"PONG\r\n"
        await close(writer)
        await server.join()
    assert server.transcripts[0].received == b"PING\r\n"
    assert current_tasks() == tasks  # nothing left running


async def test_unix_socket() -> None:
    async with AsyncScriptedServer([Send(b"unix")], unix=True) as server:
        path = server.path
        assert path is not None
        reader, writer = await open_client(server)
        assert await reader.read() == b"unix"
        await close(writer)
    assert not os.path.exists(path)  # noqa: ASYNC240


async def test_mismatch_is_raised_on_exit() -> None:
    with pytest.raises(ScriptError, match="offset 1") as info:
        async with AsyncScriptedServer([Expect(b"ab")]) as server:
            reader, writer = await open_client(server)
            writer.write(b"aX")
            assert await reader.read() == b""
            await close(writer)
    assert info.value.connection == 1


async def test_join_reports_errors_and_timeouts() -> None:
    async with AsyncScriptedServer([RecvUntil(b"\n", timeout=0.05)]) as server:
        _, writer = await open_client(server)
        with pytest.raises(ScriptError) as info:
            await server.join()
        assert isinstance(info.value.__cause__, TimeoutError)
        await close(writer)
    async with AsyncScriptedServer(scripts=[[Send(b"1")], [Send(b"2")]]) as server:
        with pytest.raises(TimeoutError, match="0 of 2 expected connections"):
            await server.join(0.01)


async def test_client_eof_is_truncation_unless_allowed() -> None:
    for allow in (False, True):
        async with AsyncScriptedServer([Expect(b"abcd")], allow_disconnect=allow) as server:
            _, writer = await open_client(server)
            writer.write(b"ab")
            await close(writer)
            if allow:
                await server.join()
            else:
                with pytest.raises(ScriptError) as info:
                    await server.join()
                assert isinstance(info.value.__cause__, TruncatedError)


async def test_retry_scenario_and_refuse() -> None:
    scripts = [[RecvUntil(b"\n"), Reset()], [RecvUntil(b"\n"), Send(b"ok")]]
    async with AsyncScriptedServer(scripts=scripts, then="refuse") as server:
        outcomes: list[object] = []
        for _ in range(2):
            reader, writer = await open_client(server)
            writer.write(b"req\n")
            try:
                outcomes.append(await reader.read())
            except ConnectionResetError:
                outcomes.append("reset")
            await close(writer)
        await server.join()
        assert outcomes == ["reset", b"ok"]
        with pytest.raises(ConnectionRefusedError):
            await open_client(server)


async def test_concurrent_connections() -> None:
    async with AsyncScriptedServer([RecvUntil(b"\n"), Send(b"ack")]) as server:
        (r1, w1), (r2, w2) = await open_client(server), await open_client(server)
        w2.write(b"2\n")
        assert await r2.read() == b"ack"
        w1.write(b"1\n")
        assert await r1.read() == b"ack"
        await close(w1)
        await close(w2)
        await server.join()


async def test_frames() -> None:
    codec = LengthPrefixCodec(1)
    async with AsyncScriptedServer(
        [ExpectFrame(b"hi", codec=codec), SendFrame(b"yo", codec=codec)]
    ) as server:
        reader, writer = await open_client(server)
        writer.write(b"\x02hi")
        assert await reader.read() == b"\x02yo"
        await close(writer)
        await server.join()


async def test_faults_seen_by_an_asyncio_client() -> None:
    # Reset: ConnectionResetError, not EOF.
    async with AsyncScriptedServer([RecvUntil(b"\n"), Reset()]) as server:
        reader, writer = await open_client(server)
        writer.write(b"x\n")
        with pytest.raises(ConnectionResetError):
            await reader.read()
        await close(writer)
    # HalfClose: EOF while writing still works.
    async with AsyncScriptedServer([Send(b"a"), HalfClose(), Expect(b"b")]) as server:
        reader, writer = await open_client(server)
        assert await reader.read() == b"a"
        writer.write(b"b")
        await server.join()
        await close(writer)
    # Stall: the client's read times out.
    async with AsyncScriptedServer([Stall()]) as server:
        reader, writer = await open_client(server)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.05)
        await close(writer)
    # Fragmented and slow reads.
    script = [SendSegments(b"abcdef", sizes=[2], gap=0.02), Drip(b"xyz", bytes_per_second=200)]
    async with AsyncScriptedServer(script) as server:
        reader, writer = await open_client(server)
        reads = []
        while chunk := await reader.read(100):
            reads.append(chunk)
        assert b"".join(reads) == b"abcdefxyz"
        assert len(reads) >= 3
        await close(writer)


async def test_stop_reading_blocks_the_writer() -> None:
    async with AsyncScriptedServer([StopReading()]) as server:
        _, writer = await open_client(server)
        writer.write(b"\0" * (16 * 1024 * 1024))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(writer.drain(), 0.2)
        writer.transport.abort()
        await close(writer)


async def test_stop_is_fast_and_interrupts_sleep() -> None:
    server = await AsyncScriptedServer([Send(b"r"), Sleep(60)]).start()
    reader, writer = await open_client(server)
    assert await reader.readexactly(1) == b"r"
    t0 = time.perf_counter()
    await server.stop()
    assert time.perf_counter() - t0 < 0.5
    assert await reader.read() == b""
    await close(writer)
    assert "server stopped during step 2" in str(server.transcripts[0])
    await server.stop()  # idempotent


async def test_usage_errors() -> None:
    server = AsyncScriptedServer([Send(b"x")])
    with pytest.raises(UsageError, match="before start"):
        await server.join()
    async with server:
        with pytest.raises(UsageError, match="twice"):
            await server.start()
        assert isinstance(server.address, tuple)
        with socket.create_connection(server.address):
            pass
