"""pytest plugin for wirelab (entry point ``pytest11``): a thin layer over wirelab.testing.

Fixtures ``tcpserver`` and ``tcpserver_factory``, with the API and messages of
pytest-tcpclient, over :class:`wirelab.testing._expect.ExpectServer` (see there for the
semantics)::

    async def test_hello(tcpserver):            # @pytest.mark.asyncio
        tcpserver.expect_connect()
        tcpserver.expect_bytes(b"Hello, server!")
        tcpserver.send_bytes(b"Hello, client!")
        tcpserver.expect_disconnect()
        reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
        ...
        await tcpserver.join()

The server runs in its own thread, so the fixtures are plain (sync) fixtures that work in
sync and async tests alike, with any client. In async tests ``await tcpserver.join()``; in
sync tests ``tcpserver.join_sync()`` (it refuses to run in a thread with a running event
loop, where it would starve an asyncio client). ``await tcpserver_factory()`` starts one
more server; ``tcpserver_factory.start()`` does the same from sync code.

Failures are raised as :class:`TcpServerFailed`, which is at once pytest's ``Failed`` (it
prints as ``Failed: <message>``, like pytest-tcpclient's ``pytest.fail``), an
``AssertionError`` and a :class:`wirelab.testing.ExpectationFailed`. The details (step,
hexdumps, first mismatching byte, transcript) are added to the failure report as a section.

At teardown, if the test passed, every server runs pytest-tcpclient's end-of-test checks:
the steps left are awaited, every connection must have been closed by the client (an
implicit ``expect_disconnect()``), and no connection may be left unclaimed. A failure there
is reported as an error at teardown. A server that was never connected to and never given
an ``expect_connect()`` passes. A test that failed (or was skipped) on its own gets no
second report from the servers: they are just closed.

While a fixture lives, ``asyncio.open_connection`` to one of its servers hands the client's
streams to that server (as pytest-tcpclient patched it), so an asyncio client in the test's
process gets pytest-tcpclient's unread-data and ``wait_closed()`` checks; other clients are
checked at the kernel level. The ini option ``wirelab_tcpserver_observe_asyncio = false``
turns that off.

Default timeout of every step: ``@pytest.mark.tcpserver_timeout(seconds)``, else the
``wirelab_tcpserver_timeout`` ini option, else 1 second.

This module is imported by every pytest run of a project that installs wirelab, so it
imports nothing heavy: the server engine is imported when a fixture is first used.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from ._expect_errors import ExpectationFailed

if TYPE_CHECKING:
    import asyncio

    from _pytest.outcomes import Failed

    from ._expect import ExpectServer, ExpectServerFactory
else:
    Failed = pytest.fail.Exception

__all__ = ["OBSERVE_INI", "TIMEOUT_INI", "TIMEOUT_MARKER", "TcpServerFailed"]

TIMEOUT_INI = "wirelab_tcpserver_timeout"
OBSERVE_INI = "wirelab_tcpserver_observe_asyncio"
TIMEOUT_MARKER = "tcpserver_timeout"


class TcpServerFailed(ExpectationFailed, Failed):
    """A ``tcpserver`` failure: pytest's ``Failed`` + ``AssertionError`` + ExpectationFailed.

    Like pytest's own ``Failed``, it pretends to live in ``builtins`` so that pytest prints
    it as ``Failed: <message>``, exactly as pytest-tcpclient's ``pytest.fail(message)``.
    Catch it as ``pytest.fail.Exception``, ``AssertionError`` or ``ExpectationFailed``.
    """

    __module__ = "builtins"
    __qualname__ = "Failed"

    def __init__(
        self, message: str, *, details: str = "", mismatch_offset: int | None = None
    ) -> None:
        super().__init__(message, details=details, mismatch_offset=mismatch_offset)
        # Failed.__init__ is not on this MRO path: set what pytest reads from it.
        self.msg = message
        self.pytrace = True


@dataclass
class _Outcome:
    call_passed: bool = False


_OUTCOME = pytest.StashKey[_Outcome]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        TIMEOUT_INI,
        help="default timeout in seconds of each tcpserver expectation (default: 1)",
        default="",
    )
    parser.addini(
        OBSERVE_INI,
        help="watch the streams of asyncio.open_connection() clients of tcpserver, for "
        "pytest-tcpclient's unread-data and wait_closed() checks (default: true)",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{TIMEOUT_MARKER}(seconds): default timeout of the tcpserver expectations of this "
        f"test (overrides the {TIMEOUT_INI} ini option)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    outcome = item.stash.get(_OUTCOME, None)
    if outcome is not None and report.when == "call":
        outcome.call_passed = report.passed
    if report.failed and call.excinfo is not None:
        exc = call.excinfo.value
        if isinstance(exc, ExpectationFailed) and exc.details:
            title = "tcpserver"
            if report.when == "teardown":
                title += " (end-of-test checks, run at teardown)"
            addsection = getattr(report.longrepr, "addsection", None)
            if addsection is not None:  # shown right under the traceback, whatever -s says
                addsection(title, exc.details)
            else:
                report.sections.append((title, exc.details))
    return report


def _default_timeout(request: pytest.FixtureRequest) -> float | None:
    """The marker's or ini option's timeout; None when neither is set (engine default)."""
    marker = request.node.get_closest_marker(TIMEOUT_MARKER)
    if marker is not None:
        value: object = marker.args[0] if marker.args else marker.kwargs.get("seconds")
        source = f"@pytest.mark.{TIMEOUT_MARKER}"
    else:
        value = request.config.getini(TIMEOUT_INI)
        if value == "":
            return None
        source = f"the {TIMEOUT_INI} ini option"
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (0 < seconds < math.inf):
        pytest.fail(f"{source}: expected a number of seconds > 0, got {value!r}", pytrace=False)
    return seconds


@pytest.fixture
def tcpserver_factory(request: pytest.FixtureRequest) -> Iterator[ExpectServerFactory]:
    """Starts scripted TCP servers: ``await tcpserver_factory()`` (or ``.start()`` in sync
    code) returns a new, listening ``ExpectServer``; all are checked and stopped at
    teardown (see the module docstring)."""
    from ._expect import DEFAULT_TIMEOUT, ExpectServerFactory

    outcome = request.node.stash.setdefault(_OUTCOME, _Outcome())
    timeout = _default_timeout(request)
    factory = ExpectServerFactory(
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout, failure_type=TcpServerFailed
    )
    with _observing_asyncio_clients(factory, enabled=bool(request.config.getini(OBSERVE_INI))):
        yield factory
        if not outcome.call_passed:
            factory.close()
            return
        try:
            factory.stop_sync()
        except TcpServerFailed as exc:
            exc.pytrace = False  # our frames would say nothing: print the message and details
            raise


@contextlib.contextmanager
def _observing_asyncio_clients(factory: ExpectServerFactory, *, enabled: bool) -> Iterator[None]:
    """While the fixture lives, ``asyncio.open_connection`` to one of the factory's servers
    hands the client's streams to that server (:meth:`ExpectServer.observe_client`), as
    pytest-tcpclient patched it; other connections are untouched."""
    import asyncio  # here: importing this plugin must stay cheap

    original = asyncio.open_connection
    if not enabled:
        yield
        return

    @functools.wraps(original)
    async def open_connection(
        host: Any = None, port: Any = None, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await original(host, port, **kwargs)
        server = factory.server_on_port(port)
        if server is not None:
            server.observe_client(reader, writer)
        return reader, writer

    asyncio.open_connection = open_connection
    try:
        yield
    finally:
        if asyncio.open_connection is open_connection:
            asyncio.open_connection = original


@pytest.fixture
def tcpserver(tcpserver_factory: ExpectServerFactory) -> ExpectServer:
    """A scripted TCP server on 127.0.0.1, listening on ``tcpserver.service_port``.

    Queue ``expect_connect()``, ``expect_bytes()``, ``send_bytes()``, ``expect_frame()``,
    ``send_frame()``, ``disconnect()``, ``expect_disconnect()``; run the client; then
    ``await tcpserver.join()`` (async test) or ``tcpserver.join_sync()`` (sync test) to
    fail with a diagnostic. If the test passes, the end-of-test checks run at teardown."""
    return tcpserver_factory.start()
