"""The ``tcpserver`` fixtures beyond pytest-tcpclient: any client, sync tests, several
connections, codecs, timeouts from ini and marker, teardown reports, plugin hygiene.

Inner sessions run in-process (``inline_run``), several tests each, and are compared as a
table ``test -> (outcome, message)``; one run uses a subprocess, to load the plugin through
its entry point as a user's pytest does.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from .conftest import INI, INNER_ARGS, outcomes

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("no_leaked_threads")  # see conftest.py

HELPERS = """
import asyncio
import select
import socket
import subprocess
import sys
import threading

import pytest
import pytest_asyncio

from wirelab import WirelabError
from wirelab.framing import DelimiterCodec, LengthPrefixCodec
from wirelab.testing._expect import ExpectationFailed


def connect(server):
    return socket.create_connection(("127.0.0.1", server.service_port), timeout=10)


def recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, data
        data += chunk
    return data


async def close(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass
"""

RESET = "Failed: Connection was reset. Did client close writer prematurely?"


def run(
    pytester: pytest.Pytester, body: str, *args: str, ini: str = ""
) -> dict[str, tuple[str, str]]:
    pytester.makeini(INI + ini)
    pytester.makepyfile(test_inner=HELPERS + textwrap.dedent(body))
    return outcomes(pytester.inline_run(*INNER_ARGS, *args))


PASS = ("passed", "")


def test_any_client_in_sync_and_async_tests(pytester: pytest.Pytester) -> None:
    results = run(
        pytester,
        """
        def test_blocking_client_in_a_sync_test(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"ping")
            tcpserver.send_bytes(b"pong")
            tcpserver.expect_disconnect()
            with connect(tcpserver) as sock:
                sock.sendall(b"ping")
                assert recv_exactly(sock, 4) == b"pong"
            tcpserver.join_sync()


        def test_client_in_a_thread(tcpserver):
            def client():
                with connect(tcpserver) as sock:
                    sock.sendall(b"hello")
                    got.append(recv_exactly(sock, 2))

            got = []
            thread = threading.Thread(target=client)
            thread.start()
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"hello")
            tcpserver.send_bytes(b"hi")
            thread.join()
            assert got == [b"hi"]


        def test_subprocess_client(tcpserver):
            code = (
                "import socket, sys\\n"
                "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\\n"
                "s.sendall(b'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n')\\n"
                "print(s.recv(100).decode(), end='')\\n"
                "s.close()\\n"
            )
            tcpserver.expect_connect()
            tcpserver.expect_bytes(regex=rb"GET (\\S+) HTTP/1\\.[01]\\r\\n\\r\\n")
            tcpserver.send_bytes(b"HTTP/1.0 204 No Content\\r\\n\\r\\n")
            tcpserver.expect_disconnect()
            done = subprocess.run(
                [sys.executable, "-c", code, str(tcpserver.service_port)],
                capture_output=True, timeout=60, check=True,
            )
            assert done.stdout == b"HTTP/1.0 204 No Content\\r\\n\\r\\n"
            tcpserver.join_sync()


        @pytest.mark.asyncio
        async def test_asyncio_client(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(prefix=b"HELO ", size=9)
            tcpserver.send_bytes(b"250\\n")
            reader, writer = await asyncio.open_connection("127.0.0.1", tcpserver.service_port)
            writer.write(b"HELO you")
            writer.write(b"!")
            assert await reader.readline() == b"250\\n"
            await close(writer)
            await tcpserver.join()


        def test_fixture_requested_but_not_used(tcpserver):
            assert tcpserver.service_port > 0


        def test_without_the_fixture():
            pass
        """,
    )
    assert results == {
        "test_blocking_client_in_a_sync_test": PASS,
        "test_client_in_a_thread": PASS,
        "test_subprocess_client": PASS,
        "test_asyncio_client": PASS,
        "test_fixture_requested_but_not_used": PASS,
        "test_without_the_fixture": PASS,
    }


def test_connections_frames_and_factory(pytester: pytest.Pytester) -> None:
    results = run(
        pytester,
        """
        @pytest.mark.asyncio
        async def test_sequential_connections(tcpserver):
            for n in range(3):
                tcpserver.expect_connect()
                tcpserver.expect_frame(b"request %d" % n)
                tcpserver.send_frame(b"answer %d" % n)
                tcpserver.expect_disconnect()
            for n in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", tcpserver.service_port)
                writer.write(LengthPrefixCodec().encode(b"request %d" % n))
                assert await reader.readexactly(12) == LengthPrefixCodec().encode(b"answer %d" % n)
                await close(writer)
            await tcpserver.join()


        def test_concurrent_connections_through_handles(tcpserver):
            first = tcpserver.expect_connect()
            second = tcpserver.expect_connect()
            second.expect_bytes(b"2")
            first.expect_bytes(b"1")
            first.send_bytes(b"one")
            second.send_bytes(b"two")
            with connect(tcpserver) as one, connect(tcpserver) as two:
                two.sendall(b"2")
                one.sendall(b"1")
                assert recv_exactly(two, 3) == b"two"
                assert recv_exactly(one, 3) == b"one"
            tcpserver.join_sync()
            assert tcpserver.connections == (first, second)
            assert first.transcript.received == b"1"


        def test_codecs(tcpserver):
            lines = DelimiterCodec(b"\\r\\n")
            short = LengthPrefixCodec(2, "little")
            tcpserver.expect_connect()
            tcpserver.expect_frame(b"USER me", codec=lines)
            tcpserver.send_frame(b"+OK", codec=lines)
            tcpserver.expect_frame(prefix=b"bin", codec=short)
            tcpserver.send_frame(b"\\x00\\x01", codec=short)
            with connect(tcpserver) as sock:
                sock.sendall(b"USER me\\r\\n")
                assert recv_exactly(sock, 5) == b"+OK\\r\\n"
                sock.sendall(b"\\x05\\x00binar")
                assert recv_exactly(sock, 4) == b"\\x02\\x00\\x00\\x01"
            tcpserver.join_sync()


        def test_factory_in_sync_code(tcpserver_factory):
            lines = tcpserver_factory.start(codec=DelimiterCodec())
            other = tcpserver_factory.start()
            lines.expect_connect()
            lines.expect_frame(b"hi")
            with connect(lines) as sock:
                sock.sendall(b"hi\\n")
            assert tcpserver_factory.servers == (lines, other)
            tcpserver_factory.stop_sync()


        @pytest.mark.tcpserver_timeout(5)
        def test_a_client_fixture_closing_before_the_server_checks(tcpserver, client):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"x")
            client.sendall(b"x")


        @pytest.fixture
        def client(tcpserver):
            with connect(tcpserver) as sock:  # closed before tcpserver's end-of-test checks
                yield sock
        """,
    )
    assert results == {
        "test_sequential_connections": PASS,
        "test_concurrent_connections_through_handles": PASS,
        "test_codecs": PASS,
        "test_factory_in_sync_code": PASS,
        "test_a_client_fixture_closing_before_the_server_checks": PASS,
    }


def test_own_errors_are_reported_alone(pytester: pytest.Pytester) -> None:
    results = run(
        pytester,
        """
        def test_own_error(tcpserver):
            tcpserver.expect_connect()  # never met: no second report for it
            raise ValueError("mine")


        def test_own_failed_assert_with_a_client_left_open(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"never sent")
            with connect(tcpserver):
                assert 1 == 2


        def test_skip(tcpserver):
            tcpserver.expect_connect()
            pytest.skip("not today")


        @pytest.mark.xfail(raises=ValueError, strict=True)
        def test_xfail(tcpserver):
            tcpserver.expect_connect()
            raise ValueError("known")


        @pytest.mark.asyncio
        async def test_join_sync_in_an_async_test(tcpserver):
            tcpserver.join_sync()
        """,
    )
    assert results == {
        "test_own_error": ("failed", "ValueError: mine"),
        "test_own_failed_assert_with_a_client_left_open": ("failed", "assert 1 == 2"),
        "test_skip": ("skipped", ""),
        "test_xfail": ("skipped", ""),
        "test_join_sync_in_an_async_test": (
            "failed",
            "wirelab._exceptions.UsageError: join_sync() blocks, and this thread runs an event "
            "loop (a client in it could not make progress): use `await join()` here",
        ),
    }


def test_unmet_expectations_without_join_fail_at_teardown(pytester: pytest.Pytester) -> None:
    results = run(
        pytester,
        """
        def test_mismatch_never_joined(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"x")
            with connect(tcpserver) as sock:
                sock.sendall(b"y")


        def test_connection_nobody_expected(tcpserver):
            connect(tcpserver).close()


        @pytest.mark.tcpserver_timeout(0.1)
        def test_client_still_connected(sockets, tcpserver):
            tcpserver.expect_connect()
            sockets.append(connect(tcpserver))


        @pytest.fixture
        def sockets():  # set up before tcpserver, so closed after its checks
            opened = []
            yield opened
            for sock in opened:
                sock.close()


        def test_client_left_with_bytes_unread(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"Hola!")
            with connect(tcpserver) as sock:
                select.select([sock], [], [], 10)  # arrived, never read


        @pytest.mark.asyncio
        async def test_asyncio_reader_buffer_is_observed(tcpserver):
            # The bytes left the socket for asyncio's buffer (no reset); the fixture watches
            # the in-process client's StreamReader, as pytest-tcpclient did.
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"One\\nTwo\\n")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readline() == b"One\\n"
            await close(writer)
            await tcpserver.join()
        """,
    )
    assert results == {
        "test_mismatch_never_joined": (
            "error at teardown",
            "Failed: Expected to read b'x' but actually read b'y'",
        ),
        "test_connection_nobody_expected": (
            "error at teardown",
            "Failed: Unexpected connection #1: no `expect_connect()` was declared for it.",
        ),
        "test_client_still_connected": (
            "error at teardown",
            "Failed: Timed out waiting for client to disconnect. Remember to call "
            "`writer.close()`.",
        ),
        "test_client_left_with_bytes_unread": ("error at teardown", RESET),
        "test_asyncio_reader_buffer_is_observed": (
            "failed",
            "Failed: There is data sent by server that was not read by client: "
            "unread_bytes=b'Two\\n'.",
        ),
    }


def test_observing_asyncio_clients_can_be_turned_off(pytester: pytest.Pytester) -> None:
    """With the ini option off, only the kernel-level view is left: bytes that reached
    the client's StreamReader count as read, as for any other client."""
    body = """
        @pytest.mark.asyncio
        async def test_unread_in_the_reader_buffer(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"One\\nTwo\\n")
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readline() == b"One\\n"
            await close(writer)
            tcpserver.expect_disconnect()
            await tcpserver.join()
        """
    results = run(pytester, body, ini="wirelab_tcpserver_observe_asyncio = false\n")
    assert results == {"test_unread_in_the_reader_buffer": PASS}
    assert asyncio.open_connection.__module__ == "asyncio.streams"  # restored


def test_failures_can_be_caught_as_any_of_their_types(pytester: pytest.Pytester) -> None:
    results = run(
        pytester,
        """
        @pytest.mark.parametrize(
            "kind", [ExpectationFailed, AssertionError, WirelabError, pytest.fail.Exception]
        )
        def test_catch(tcpserver_factory, kind):
            server = tcpserver_factory.start(timeout=0.05)
            server.expect_connect()
            with pytest.raises(kind, match=r"^Timed out waiting for client to connect\\.$"):
                server.join_sync()
        """,
    )
    assert set(results.values()) == {PASS}
    assert len(results) == 4


def test_timeouts_from_ini_marker_and_call(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "wirelab_tcpserver_timeout = 0.05\n")
    pytester.makepyfile(
        test_inner=HELPERS
        + textwrap.dedent(
            """
            def test_ini(tcpserver):
                tcpserver.expect_connect()
                tcpserver.join_sync()


            @pytest.mark.tcpserver_timeout(0.1)
            def test_marker(tcpserver):
                tcpserver.expect_connect()
                tcpserver.join_sync()


            @pytest.mark.tcpserver_timeout(seconds=0.2)
            class TestClassMarker:
                def test_marker_on_class(self, tcpserver_factory):
                    server = tcpserver_factory.start()
                    server.expect_connect()
                    server.join_sync()

                def test_explicit_timeout_wins(self, tcpserver):
                    tcpserver.expect_connect(timeout=0.15)
                    tcpserver.join_sync()
            """
        )
    )
    reprec = pytester.inline_run(*INNER_ARGS, "--strict-markers", "--strict-config")
    texts = {
        report.nodeid.rsplit("::", 1)[-1]: report.longreprtext
        for report in reprec.getreports("pytest_runtest_logreport")
        if report.failed
    }
    assert set(texts) == {
        "test_ini",
        "test_marker",
        "test_marker_on_class",
        "test_explicit_timeout_wins",
    }
    for name, timeout in [
        ("test_ini", "0.05"),
        ("test_marker", "0.1"),
        ("test_marker_on_class", "0.2"),
        ("test_explicit_timeout_wins", "0.15"),
    ]:
        assert f"step 1, expect_connect() (timeout {timeout} s)" in texts[name], name


@pytest.mark.parametrize(
    ("ini", "marker", "message"),
    [
        (
            "wirelab_tcpserver_timeout = soon\n",
            "",
            "the wirelab_tcpserver_timeout ini option: expected a number of seconds > 0, "
            "got 'soon'",
        ),
        (
            "",
            "@pytest.mark.tcpserver_timeout(-1)",
            "@pytest.mark.tcpserver_timeout: expected a number of seconds > 0, got -1",
        ),
        (
            "",
            "@pytest.mark.tcpserver_timeout",
            "@pytest.mark.tcpserver_timeout: expected a number of seconds > 0, got None",
        ),
        (
            "",
            "@pytest.mark.tcpserver_timeout(True)",
            "@pytest.mark.tcpserver_timeout: expected a number of seconds > 0, got True",
        ),
    ],
)
def test_bad_timeouts_fail_the_tests_that_use_the_fixture_only(
    pytester: pytest.Pytester, ini: str, marker: str, message: str
) -> None:
    results = run(
        pytester,
        f"""
        {marker}
        def test_uses_it(tcpserver):
            pass


        def test_does_not():
            pass
        """,
        ini=ini,
    )
    assert results == {
        "test_uses_it": ("error at setup", f"Failed: {message}"),
        "test_does_not": PASS,
    }


def test_reports_show_the_details(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_inner=HELPERS
        + textwrap.dedent(
            """
            def test_joined(tcpserver):
                tcpserver.expect_connect()
                tcpserver.expect_bytes(b"Hello, world")
                with connect(tcpserver) as sock:
                    sock.sendall(b"Hello, wxrld")
                    tcpserver.join_sync()


            def test_not_joined(tcpserver):
                tcpserver.expect_connect()
                tcpserver.expect_frame(b"abc")
                with connect(tcpserver) as sock:
                    sock.sendall(b"\\x00\\x00\\x00\\x03abd")
            """
        )
    )
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(failed=1, passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_not_joined _*",
            "Expected to get frame b'abc' but actually got frame b'abd'",
            "*- tcpserver (end-of-test checks, run at teardown) -*",
            "tcpserver on 127.0.0.1:*: step 2, expect_frame(b'abc') (timeout 1 s)",
            "expected (3 bytes):",
            "  00000000  61 62 63 * |abc|",
            "actual frame payload (3 bytes, frame at stream offset 0):",
            "  00000000  61 62 64 * |abd|",
            "first mismatching byte: offset 2 of the frame payload: expected 0x63, got 0x64",
            "*_ test_joined _*",
            "*tcpserver.join_sync()",
            "E * Failed: Expected to read b'Hello, world' but actually read b'Hello, wxrld'",
            "*- tcpserver -*",
            "first mismatching byte: offset 8 of the read (stream offset 8): "
            "expected 0x6f, got 0x78",
            "transcript of connection #1 from 127.0.0.1:* (4 records):",
            "*<- client sent 12 bytes",
            "    00000000  48 65 6c 6c 6f 2c 20 77 78 72 6c 64 * |Hello, wxrld|",
            "*step 2 FAILED",
        ]
    )


def test_registered_options_and_markers(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    result = pytester.runpytest(*INNER_ARGS, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tcpserver_timeout(seconds): *"])
    result = pytester.runpytest(*INNER_ARGS, "--help")
    result.stdout.fnmatch_lines(
        ["  wirelab_tcpserver_timeout (string):", "*default timeout in seconds of each tcpserver*"]
    )


def test_entry_point_loads_the_plugin_in_a_fresh_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "wirelab_tcpserver_timeout = 2\n")
    pytester.makepyfile(
        test_inner=HELPERS
        + textwrap.dedent(
            """
            @pytest.mark.tcpserver_timeout(3)
            def test_it(tcpserver):
                tcpserver.expect_connect()
                tcpserver.expect_bytes(b"hi")
                with connect(tcpserver) as sock:
                    sock.sendall(b"hi")
                    tcpserver.join_sync()
            """
        )
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS, "--strict-markers", "--strict-config")
    result.assert_outcomes(passed=1)


def test_importing_the_plugin_is_cheap() -> None:
    code = (
        "import sys, wirelab.testing.pytest_plugin\n"
        "heavy = {'asyncio', 'wirelab.testing._expect', 'wirelab.framing'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
