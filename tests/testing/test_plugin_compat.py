"""The ``tcpserver`` fixtures against pytest-tcpclient's own scenarios.

Each scenario below is one of pytest-tcpclient's examples, rewritten for this suite (and
closing its sockets, since ResourceWarnings are errors here). It runs in an inner pytest
session, in-process, and must pass or fail as it does with pytest-tcpclient, with the same
message. Scenarios where the server side cannot see what pytest-tcpclient saw by patching
asyncio are in test_plugin_fixtures.py, with the reason.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from .conftest import INI, INNER_ARGS, outcomes

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("no_leaked_threads")  # see conftest.py

HELPERS = """
import asyncio
import struct

import pytest

from wirelab.testing import read_frame, write_frame  # was: from pytest_tcpclient.framing


async def close(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


async def connect(server):
    return await asyncio.open_connection(None, server.service_port)
"""

SECOND_CONNECTION = "While waiting for client to disconnect a second connection was attempted."

# name: (test body, expected outcome, expected message of the failure)
SCENARIOS: dict[str, tuple[str, str, str]] = {
    "hello": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, server!")
            tcpserver.send_bytes(b"Hello, client!")
            tcpserver.expect_disconnect()
            reader, writer = await connect(tcpserver)
            writer.write(b"Hello, server!")
            assert await reader.readexactly(14) == b"Hello, client!"
            await close(writer)
            await tcpserver.join()
        """,
        "passed",
        "",
    ),
    "expect_connect_after_the_client_left": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            await close(writer)
            tcpserver.expect_connect()
            tcpserver.expect_disconnect()
            await tcpserver.join()
            assert await reader.read() == b""
        """,
        "passed",
        "",
    ),
    "expect_connect_before_the_client_comes": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect()
            reader, writer = await connect(tcpserver)
            await close(writer)
            await tcpserver.join()
        """,
        "passed",
        "",
    ),
    "minimal_without_join": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            await close(writer)
        """,
        "passed",
        "",
    ),
    "second_connection": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_connect()
            reader_2, writer_2 = await connect(tcpserver)
            tcpserver.expect_disconnect()
            try:
                await tcpserver.join()
            finally:
                await close(writer)
                await close(writer_2)
        """,
        "failed",
        SECOND_CONNECTION,
    ),
    "expect_connect_times_out": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect(timeout=0.1)
            await tcpserver.join()
        """,
        "failed",
        "Timed out waiting for client to connect.",
    ),
    "expect_disconnect_times_out": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_connect()
            tcpserver.expect_disconnect(timeout=0.1)
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Timed out waiting for client to disconnect. Remember to call `writer.close()`.",
    ),
    "expect_disconnect_receives_unexpected_bytes": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect(timeout=0.2)
            reader, writer = await connect(tcpserver)
            writer.write(b"Hello")
            await close(writer)
            await tcpserver.join()
        """,
        "failed",
        "Received unexpected data while waiting for client to disconnect. Data is b'Hello'.",
    ),
    "client_not_connected": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_disconnect()
            await tcpserver.join()
        """,
        "failed",
        "Client is not connected. Did you forget to call `asyncio.open_connection`?",
    ),
    "expect_bytes_success": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, world")
            tcpserver.expect_bytes(b"Goodbye, world")
            tcpserver.expect_disconnect()
            reader, writer = await connect(tcpserver)
            writer.write(b"Hello, world")
            writer.write(b"Goodbye, world")
            await close(writer)
            await tcpserver.join()
        """,
        "passed",
        "",
    ),
    "expect_bytes_times_out": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, world!", timeout=0.1)
            tcpserver.expect_disconnect()
            reader, writer = await connect(tcpserver)
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Timed out waiting for b'Hello, world!'",
    ),
    "expect_bytes_connection_closed": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.expect_bytes(b"Hello, world")
            tcpserver.expect_disconnect()
            await close(writer)
            await tcpserver.join()
        """,
        "failed",
        "Expected to read b'Hello, world' but only read b'' before the connection was closed.",
    ),
    "expect_bytes_wrong_bytes_sent": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.expect_bytes(b"Hello, world")
            writer.write(b"Hello, world")
            tcpserver.expect_bytes(b"Bonjour")
            writer.write(b"Goodbye, world")
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Expected to read b'Bonjour' but actually read b'Goodbye'",
    ),
    "send_bytes": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            await tcpserver.join()
            tcpserver.send_bytes(b"Hola!")
            await tcpserver.join()
            assert await reader.read(5) == b"Hola!"
            tcpserver.send_bytes(b"Adios!")
            await tcpserver.join()
            assert await reader.read(6) == b"Adios!"
            writer.close()
            assert await reader.read() == b""
            await writer.wait_closed()
        """,
        "passed",
        "",
    ),
    "connection_reset": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            await tcpserver.join()
            tcpserver.send_bytes(b"Hola!")
            await tcpserver.join()
            assert await reader.read(5) == b"Hola!"
            tcpserver.send_bytes(b"Adios!")
            tcpserver.send_bytes(b"Amigo!")
            await close(writer)
            tcpserver.expect_disconnect()
            await tcpserver.join()
        """,
        "failed",
        "Connection was reset. Did client close writer prematurely?",
    ),
    "delayed_join": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.expect_bytes(b"Hello, world")
            writer.write(b"Hello, world")
            tcpserver.expect_bytes(b"Goodbye, world")
            writer.write(b"Goodbye, world")
            await tcpserver.join()
            await close(writer)
        """,
        "passed",
        "",
    ),
    "expect_connect_is_absent": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_bytes(b"Hello, world")
            writer.write(b"Hello, world")
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Missing `expect_connect()` before `expect_bytes(b'Hello, world')`",
    ),
    "early_error_does_not_hang": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello")
            tcpserver.expect_bytes(b"Goodbye")
            tcpserver.expect_bytes(b"Sayonara")
            writer.write(b"Adios amigo!")
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Expected to read b'Hello' but actually read b'Adios'",
    ),
    "ordering": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello")
            reader, writer = await connect(tcpserver)
            writer.write(b"Hello")
            await tcpserver.join()
            await close(writer)
        """,
        "passed",
        "",
    ),
    "expect_frame_success": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_connect()
            writer.write(b"Hello, world")
            tcpserver.expect_bytes(b"Hello, world")
            write_frame(writer, b"Goodbye, world")
            tcpserver.expect_frame(b"Goodbye, world")
            await close(writer)
        """,
        "passed",
        "",
    ),
    "expect_frame_times_out": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.expect_frame(b"Goodbye, world", timeout=0.1)
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Timed out waiting for frame b'Goodbye, world'",
    ),
    "expect_frame_wrong_bytes_sent": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.expect_frame(b"Bonjour")
            write_frame(writer, b"Goodbye, world")
            try:
                await tcpserver.join()
            finally:
                await close(writer)
        """,
        "failed",
        "Expected to get frame b'Bonjour' but actually got frame b'Goodbye, world'",
    ),
    "send_frame_success": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.send_frame(b"Hello")
            header = await reader.readexactly(4)
            (size,) = struct.unpack(">I", header)
            assert await reader.readexactly(size) == b"Hello"
            await close(writer)
        """,
        "passed",
        "",
    ),
    "server_disconnect": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_connect()
            tcpserver.send_frame(b"Hello")
            assert await read_frame(reader) == b"Hello"
            tcpserver.disconnect()
            assert await read_frame(reader) == b""
            await close(writer)
        """,
        "passed",
        "",
    ),
    "readexactly_incomplete": (
        """
        async def test_it(tcpserver):
            reader, writer = await connect(tcpserver)
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"\\x00")
            tcpserver.disconnect()
            with pytest.raises(asyncio.IncompleteReadError):
                await reader.readexactly(2)
            await close(writer)
            await tcpserver.join()
        """,
        "passed",
        "",
    ),
    "sent_data_not_read": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"Hola!")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
        """,
        "failed",
        "There is data sent by server that was not read by client: unread_bytes=b'Hola!'.",
    ),
    "sent_frame_not_read": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            tcpserver.send_frame(b"Hello")
            await tcpserver.join()
            writer.close()
            await writer.wait_closed()
            tcpserver.expect_disconnect()
            await tcpserver.join()
        """,
        "failed",
        "There is data sent by server that was not read by client: "
        "unread_bytes=b'\\x00\\x00\\x00\\x05Hello'.",
    ),
    "readline_reads_part": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"One\\nTwo\\n")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readline() == b"One\\n"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
        """,
        "failed",
        "There is data sent by server that was not read by client: unread_bytes=b'Two\\n'.",
    ),
    "readuntil_reads_part": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"AAAXBBB")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readuntil(b"X") == b"AAAX"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
        """,
        "failed",
        "There is data sent by server that was not read by client: unread_bytes=b'BBB'.",
    ),
    "readexactly_reads_part": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"OneTwo")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readexactly(3) == b"One"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
        """,
        "failed",
        "There is data sent by server that was not read by client: unread_bytes=b'Two'.",
    ),
    "everything_read_passes": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"One\\nTwo\\n")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readline() == b"One\\n"
            assert await reader.read(2) == b"Tw"
            assert await reader.readexactly(2) == b"o\\n"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
        """,
        "passed",
        "",
    ),
    "wait_closed_not_called": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect(timeout=0.1)
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            writer.close()
            try:
                await tcpserver.join()
            finally:
                await writer.wait_closed()
        """,
        "failed",
        "Timed out waiting for client to call `await writer.wait_closed()`.",
    ),
    "factory_success": (
        """
        async def test_it(tcpserver_factory):
            server_1 = await tcpserver_factory()
            server_1.expect_connect()
            server_1.expect_frame(b"Client hello 1")
            server_1.send_frame(b"Server hello 1")
            server_1.expect_disconnect()
            server_2 = await tcpserver_factory()
            server_2.expect_connect()
            server_2.expect_frame(b"Client hello 2")
            server_2.send_frame(b"Server hello 2")
            server_2.expect_disconnect()
            reader_1, writer_1 = await connect(server_1)
            write_frame(writer_1, b"Client hello 1")
            assert await read_frame(reader_1) == b"Server hello 1"
            await close(writer_1)
            reader_2, writer_2 = await connect(server_2)
            write_frame(writer_2, b"Client hello 2")
            assert await read_frame(reader_2) == b"Server hello 2"
            await close(writer_2)
            await server_1.join()
            await server_2.join()
        """,
        "passed",
        "",
    ),
    "factory_second_connection": (
        """
        async def test_it(tcpserver_factory):
            server = await tcpserver_factory()
            server.expect_connect()
            server.expect_disconnect()
            reader_1, writer_1 = await connect(server)
            reader_2, writer_2 = await connect(server)
            await close(writer_2)
            try:
                await server.join()
            finally:
                await close(writer_1)
        """,
        "failed",
        SECOND_CONNECTION,
    ),
    "factory_two_servers_one_fails": (
        """
        async def test_it(tcpserver_factory):
            server_1 = await tcpserver_factory()
            server_1.expect_connect()
            server_1.expect_frame(b"Client hello 1")
            server_1.expect_disconnect()
            server_2 = await tcpserver_factory()
            server_2.expect_connect()
            server_2.expect_frame(b"Client hello 2")
            server_2.expect_disconnect()
            reader_1, writer_1 = await connect(server_1)
            write_frame(writer_1, b"Client hello 1")
            await close(writer_1)
            reader_2, writer_2 = await connect(server_2)
            await close(writer_2)  # without the expected frame
            await server_1.join()
            await server_2.join()
        """,
        "failed",
        "Expected to get frame b'Client hello 2' but actually got frame b''",
    ),
    "factory_stop_raises_the_first_failure": (
        """
        @pytest.mark.tcpserver_timeout(0.2)
        async def test_it(tcpserver_factory):
            server_1 = await tcpserver_factory()
            server_1.expect_connect()
            server_1.expect_bytes(b"Hello_1")
            server_1.expect_disconnect()
            server_2 = await tcpserver_factory()
            server_2.expect_connect()
            server_1.expect_bytes(b"Hello_2")
            server_2.expect_disconnect()
            reader_1, writer_1 = await connect(server_1)
            reader_2, writer_2 = await connect(server_2)
            writer_1.write(b"Hello_2")
            writer_2.write(b"Hello_1")
            try:
                await tcpserver_factory.stop()
            finally:
                await close(writer_1)
                await close(writer_2)
        """,
        "failed",
        "Expected to read b'Hello_1' but actually read b'Hello_2'",
    ),
    "exception_in_test_is_the_only_report": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect()
            reader, writer = await connect(tcpserver)
            try:
                raise Exception("Exception")
            finally:
                await close(writer)
        """,
        "failed",
        "Exception: Exception",
    ),
    "pytest_raises_patterns_of_both_generations": (
        """
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            reader, writer = await connect(tcpserver)
            tcpserver.expect_bytes(b"Hello, world")
            writer.write(b"Hello, world")
            await tcpserver.join()
            tcpserver.expect_bytes(b"Goodbye, world", timeout=0.1)
            with pytest.raises(AssertionError, match=r"^Timed out waiting for b'Goodbye, world'$"):
                await tcpserver.join()
            assert tcpserver.join_already_failed
            await tcpserver.join()  # a failure is reported once
            await close(writer)

        async def test_fail_exception(tcpserver):
            tcpserver.expect_connect(timeout=0.1)
            with pytest.raises(pytest.fail.Exception, match=r"^Timed out waiting for client"):
                await tcpserver.join()
        """,
        "passed",
        "",
    ),
}


def test_scenarios_pass_or_fail_as_with_pytest_tcpclient(pytester: pytest.Pytester) -> None:
    """All scenarios in one inner session (a session costs more than most scenarios)."""
    module = [HELPERS]
    expected: dict[str, tuple[str, str]] = {}
    for name, (body, outcome, message) in SCENARIOS.items():
        code = textwrap.dedent(body).replace(
            "async def test_", f"@pytest.mark.asyncio\nasync def test_{name}__"
        )
        module.append(code)
        for test in re.findall(r"async def (test_\w+)\(", code):
            if outcome == "passed":
                expected[test] = ("passed", "")
            else:
                expected[test] = (
                    outcome,
                    message if "Exception:" in message else f"Failed: {message}",
                )
    pytester.makeini(INI)
    pytester.makepyfile(test_scenarios="\n\n".join(module))
    assert outcomes(pytester.inline_run(*INNER_ARGS)) == expected


def test_failure_is_printed_as_pytest_tcpclient_prints_it(pytester: pytest.Pytester) -> None:
    """pytest-tcpclient's own check: the line after the ``join()`` line is ``E  Failed: ...``."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_display=HELPERS
        + textwrap.dedent(
            """
            import pytest_asyncio


            @pytest_asyncio.fixture
            async def client(tcpserver):  # torn down before tcpserver, which it uses
                reader, writer = await connect(tcpserver)
                yield reader, writer
                await close(writer)


            @pytest.mark.asyncio
            async def test_it(tcpserver, client):
                tcpserver.expect_connect()
                tcpserver.expect_bytes(b"Hello, world!", timeout=0.1)
                tcpserver.expect_disconnect()
                await tcpserver.join()
            """
        )
    )
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(failed=1)
    lines = result.stdout.get_lines_after(">       await tcpserver.join()")
    assert lines[0] == "E       Failed: Timed out waiting for b'Hello, world!'"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            SCENARIOS["factory_two_servers_one_fails"][0],
            ">*await server_2.join()",
            "Expected to get frame b'Client hello 2' but actually got frame b''",
        ),
        (
            SCENARIOS["factory_stop_raises_the_first_failure"][0],
            ">*await tcpserver_factory.stop()",
            "Expected to read b'Hello_1' but actually read b'Hello_2'",
        ),
    ],
)
def test_factory_failure_names_the_server_variable_as_pytest_tcpclient(
    pytester: pytest.Pytester, body: str, line: str, message: str
) -> None:
    """pytest-tcpclient's check for factories: the failing server's own line, then
    ``E  Failed: ...``."""
    pytester.makeini(INI)
    code = textwrap.dedent(body).replace("async def test_", "@pytest.mark.asyncio\nasync def test_")
    pytester.makepyfile(test_factory=HELPERS + code)
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(failed=1)
    after = result.stdout.get_lines_after(line)[0]
    assert after.split(maxsplit=1) == ["E", f"Failed: {message}"]  # indent: the code's
