"""An expectation-scripted TCP server for testing clients: :class:`ExpectServer`.

The test scripts what the server should see and do (``expect_connect``, ``expect_bytes``,
``send_bytes``, ``expect_frame``, ``send_frame``, ``disconnect``, ``expect_disconnect``), runs
its client against :attr:`~ExpectServer.service_port`, and then calls ``await join()`` (or
``join_sync()``) to wait for the script and fail with a diagnostic message. The API and the
messages are those of pytest-tcpclient's ``tcpserver`` fixture; this module does not need
pytest (the fixtures in :mod:`wirelab.testing.pytest_plugin` are a thin layer over it).

Design, and the contracts that follow from it:

* The server runs in its own thread with its own event loop, and only observes the server
  side of a real socket; nothing in the client is patched. So any client works: asyncio in
  the test's loop, a blocking socket in the test itself or in a thread, a subprocess.
* Connections are accepted as soon as they arrive (before or after ``expect_connect``), and
  everything received is buffered and recorded in a :class:`Transcript`.
* Script methods only queue a step and return at once; they may be called from any thread,
  before or after the client acts. The steps run in order, one at a time; each step's
  timeout (default: the server's ``timeout``) starts when the step starts.
* ``expect_connect()`` claims the oldest connection that no earlier ``expect_connect()``
  claimed and returns an :class:`ExpectedConnection` handle. Steps called on the server go
  to the connection of the latest ``expect_connect()``; steps called on a handle go to that
  handle's connection. So several connections, sequential or concurrent, are scripted by
  calling ``expect_connect()`` once for each.
* The first failing step fails the script: later steps are dropped and the failure is
  raised by the next ``join``/``join_sync``/``stop``/``stop_sync``, once (after that, as in
  pytest-tcpclient, ``join`` returns quietly and ``join_already_failed`` is true).
* ``stop()``/``stop_sync()`` (and leaving a ``with`` block without an exception) run the
  end-of-test checks of pytest-tcpclient - every claimed connection must be closed by the
  client (an implicit ``expect_disconnect()``) - plus: no connection may be left unclaimed.
  A server that saw no connection and no ``expect_connect()`` passes them. ``close()`` (and
  leaving a ``with`` block with an exception) skips them.
* What the server cannot see, it does not check: it cannot tell which bytes a client read.
  A client that closes its socket with unread data makes its kernel reset the connection;
  that is reported as ``Connection was reset. Did client close writer prematurely?``.
  An asyncio client in the test's own process reads eagerly into its ``StreamReader``, so
  its kernel never resets: hand its streams to :meth:`ExpectServer.observe_client` (the
  pytest fixtures do it for ``asyncio.open_connection``) and the disconnect checks become
  pytest-tcpclient's: ``wait_closed()`` awaited, and every byte sent read by the client
  code (``There is data sent by server that was not read by client: unread_bytes=...``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from types import TracebackType
from typing import Any, Self

from .._exceptions import NetworkError, UsageError
from ._expect_client import ClientObserver, peer_key
from ._expect_core import Barrier, Core, Failure, Step
from ._expect_errors import ExpectationFailed
from ._expect_match import DEFAULT_CODEC, FrameCodec, check_codec
from ._expect_script import ExpectedConnection, ScriptMethods, check_timeout
from ._expect_steps import ExpectConnect, FinalChecks, Send
from ._transcript import Transcript

__all__ = [
    "DEFAULT_TIMEOUT",
    "ExpectServer",
    "ExpectServerFactory",
    "ExpectationFailed",
    "ExpectedConnection",
    "FrameCodec",
]

DEFAULT_TIMEOUT = 1.0
"""Seconds each step waits by default (pytest-tcpclient's ``timeout=1``)."""

_THREAD_JOIN_TIMEOUT = 10.0


def _refuse_in_event_loop(name: str, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"{name}() blocks, and this thread runs an event loop (a client in it could not "
        f"make progress): use `{instead}` here"
    )


class ExpectServer(ScriptMethods):
    """A TCP server, in its own thread, that checks a scripted conversation with a client.

    ``host``/``port`` (default ``127.0.0.1`` and a free port) say where to listen;
    ``timeout`` is the default of every step; ``codec`` frames ``expect_frame``/``send_frame``
    (a :class:`FrameCodec`; default 4-byte big-endian length prefix); ``failure_type`` is the
    exception raised for failures (a subclass of :class:`ExpectationFailed`, taking the same
    arguments). Call :meth:`start` or use it as a (sync or async) context manager.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        codec: FrameCodec | None = None,
        failure_type: type[ExpectationFailed] = ExpectationFailed,
        name: str = "tcpserver",
    ) -> None:
        checked = check_timeout(timeout)
        if checked is None:
            raise UsageError("timeout must be a number of seconds > 0, not None")
        if not (isinstance(failure_type, type) and issubclass(failure_type, ExpectationFailed)):
            raise UsageError("failure_type must be a subclass of ExpectationFailed")
        self.host = host
        self.timeout = checked
        self.codec: FrameCodec = DEFAULT_CODEC if codec is None else check_codec(codec)
        self.name = name
        self._port = port
        self._failure_type = failure_type
        self._lock = threading.Lock()
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._exited: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: Core | None = None
        self._closed = False
        self._reported = False
        self._final_failure: Failure | None = None
        self._steps = 0
        self._sends_since_join = 0  # send steps queued since join() was last called
        self._handles: list[ExpectedConnection] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start listening (returns once connections are accepted); raises NetworkError."""
        ready = self._launch()
        try:
            ready.result()
        except BaseException as exc:
            self._abort_start()
            if isinstance(exc, OSError):
                raise NetworkError(f"cannot listen on {self.host}:{self._port}: {exc}") from exc
            raise
        return self

    async def _astart(self) -> Self:
        ready = self._launch()
        try:
            await asyncio.wrap_future(ready)
        except BaseException as exc:
            self._abort_start()
            if isinstance(exc, OSError):
                raise NetworkError(f"cannot listen on {self.host}:{self._port}: {exc}") from exc
            raise
        return self

    def _launch(self) -> concurrent.futures.Future[int]:
        with self._lock:
            if self._thread is not None:
                raise UsageError(f"{self.name} was already started")
            self._thread = threading.Thread(
                target=self._thread_main, name=f"wirelab-{self.name}", daemon=True
            )
        self._thread.start()
        return self._ready

    def _abort_start(self) -> None:
        """After a failed or interrupted (cancelled) start: make sure the thread ends."""
        with contextlib.suppress(BaseException):
            self._ready.result()  # it either listens or failed; either comes quickly
        self.close()

    def _thread_main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
                runner.run(self._main())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            elif self._final_failure is None:
                self._final_failure = Failure(f"Internal error in {self.name}: {exc!r}")
        finally:
            self._exited.set_result(None)

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        core = Core(loop, name=self.name, timeout=self.timeout, codec=self.codec)
        loop.set_exception_handler(core.on_loop_error)
        try:
            port = core.listen(self.host, self._port)
            self._core, self._loop = core, loop
            threading.current_thread().name = f"wirelab-{self.name}-{port}"
            self._ready.set_result(port)
            runner = asyncio.create_task(core.run())
            try:
                await core.stop_requested.wait()
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                core.drain()
        finally:
            await core.shutdown()
            self._final_failure = core.failure

    def close(self) -> None:
        """Stop the server without the end-of-test checks; idempotent. Closes every
        connection (abruptly) and the listening socket, and joins the thread. A failure
        not yet raised is kept for a later ``join``."""
        if self._begin_close():
            assert self._thread is not None
            self._thread.join(_THREAD_JOIN_TIMEOUT)
            self._check_thread_ended()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        if self._begin_close():
            assert self._thread is not None
            await asyncio.wait_for(asyncio.wrap_future(self._exited), _THREAD_JOIN_TIMEOUT)
            self._thread.join(_THREAD_JOIN_TIMEOUT)
            self._check_thread_ended()

    def _begin_close(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            if self._thread is None:
                return False
        if self._loop is not None:
            assert self._core is not None
            self._loop.call_soon_threadsafe(self._core.stop_requested.set)
        return True

    def _check_thread_ended(self) -> None:
        assert self._thread is not None
        if self._thread.is_alive():  # pragma: no cover - only if the loop is wedged
            raise UsageError(f"{self.name}: the server thread did not stop")

    def stop_sync(self) -> None:
        """Wait for the script, run the end-of-test checks, close; raise the first failure.

        Skips the checks if a failure was already raised (``join_already_failed``), as
        pytest-tcpclient does. Idempotent. Not from a thread running an event loop.
        """
        __tracebackhide__ = True
        _refuse_in_event_loop("stop_sync", "await stop()")
        if self._closed:
            return
        try:
            if not self._reported:
                self._report(self._barrier(final=True).result())
        finally:
            self.close()

    async def stop(self) -> None:
        """:meth:`stop_sync` for async code."""
        __tracebackhide__ = True
        if self._closed:
            return
        try:
            if not self._reported:
                self._report(await asyncio.wrap_future(self._barrier(final=True)))
        finally:
            await self.aclose()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        __tracebackhide__ = True
        if kind is None:
            self.stop_sync()
        else:
            self.close()

    async def __aenter__(self) -> Self:
        return await self._astart()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        __tracebackhide__ = True
        if kind is None:
            await self.stop()
        else:
            await self.aclose()

    # -- joining -------------------------------------------------------------------------

    async def join(self) -> None:
        """Wait until every step queued so far has run; raise the script's failure.

        A failure is raised once; later calls return quietly (pytest-tcpclient's
        behaviour). Never waits forever: every waiting step has a timeout.
        """
        __tracebackhide__ = True
        self._sends_since_join = 0
        self._report(await asyncio.wrap_future(self._barrier(final=False)))

    def join_sync(self) -> None:
        """:meth:`join` for sync code: blocks the calling thread (not allowed in a thread
        that runs an event loop, whose clients could not progress meanwhile)."""
        __tracebackhide__ = True
        _refuse_in_event_loop("join_sync", "await join()")
        self._sends_since_join = 0
        self._report(self._barrier(final=False).result())

    @property
    def join_already_failed(self) -> bool:
        """True once a failure has been raised (pytest-tcpclient's attribute)."""
        return self._reported

    def _barrier(self, *, final: bool) -> concurrent.futures.Future[Failure | None]:
        barrier = Barrier()
        with self._lock:
            if self._thread is None:
                raise UsageError(f"{self.name} is not started")
            if self._closed or self._loop is None:
                barrier.resolve(self._final_failure)
                return barrier.future
            assert self._core is not None
            if final:
                self._put(FinalChecks(None))
            self._loop.call_soon_threadsafe(self._core.queue.put_nowait, barrier)
        return barrier.future

    def _report(self, failure: Failure | None) -> None:
        __tracebackhide__ = True
        if failure is None:
            return
        with self._lock:
            if self._reported:
                return
            self._reported = True
        raise self._failure_type(
            failure.message, details=failure.details, mismatch_offset=failure.mismatch_offset
        )

    # -- the script ----------------------------------------------------------------------

    def expect_connect(self, timeout: float | None = None) -> ExpectedConnection:
        """Expect a client to connect within ``timeout`` seconds (a connection made before
        this call counts). Later steps called on the server go to this connection."""
        checked = check_timeout(timeout)
        with self._lock:
            handle = ExpectedConnection(self, len(self._handles))
            self._handles.append(handle)
            self._put(ExpectConnect(handle._slot, checked))
        return handle

    @property
    def connections(self) -> tuple[ExpectedConnection, ...]:
        """Handles of every ``expect_connect()`` so far, in order (0-based)."""
        with self._lock:
            return tuple(self._handles)

    def _server_and_slot(self) -> tuple[ExpectServer, int | None]:
        with self._lock:
            return self, (len(self._handles) - 1 if self._handles else None)

    def _enqueue(self, step: Step) -> None:
        with self._lock:
            self._put(step)

    def _put(self, step: Step) -> None:  # with self._lock held
        if self._thread is None or self._loop is None:
            raise UsageError(f"{self.name} is not started")
        if self._closed:
            raise UsageError(f"{self.name} is stopped")
        assert self._core is not None
        self._steps += 1
        self._sends_since_join += isinstance(step, Send)
        step.index = self._steps
        self._loop.call_soon_threadsafe(self._core.queue.put_nowait, step)

    def observe_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Watch an in-process asyncio client's streams (connected to this server) so that
        the disconnect checks see what the client code read and whether it awaited
        ``wait_closed()`` (see the module docstring). Returns False, and changes nothing,
        if the server is not running or the reader is not a plain StreamReader."""
        core, loop = self._core, self._loop
        if core is None or loop is None or not ClientObserver.supported(reader):
            return False
        observer = ClientObserver(reader, writer)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the server loop is closed already
                loop.call_soon_threadsafe(core.notify)

        observer.on_change = wake
        observer.pending_sends = lambda: self._sends_since_join
        core.observers[peer_key(writer.get_extra_info("sockname"))] = observer
        return True

    # -- looking inside ------------------------------------------------------------------

    @property
    def service_port(self) -> int:
        """The port to connect to (pytest-tcpclient's name)."""
        if not self._ready.done():
            raise UsageError(f"{self.name} is not started")
        return self._ready.result()

    @property
    def port(self) -> int:
        return self.service_port

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.service_port

    @property
    def transcripts(self) -> tuple[Transcript, ...]:
        """The transcript of every connection accepted so far, in the order they came."""
        core = self._core
        return () if core is None else tuple(c.transcript for c in list(core.conns))

    def _transcript_of(self, slot: int) -> Transcript | None:
        core = self._core
        slots = [] if core is None else list(core.slots)
        return slots[slot].transcript if slot < len(slots) else None

    def __repr__(self) -> str:
        where = (
            f"{self.host}:{self._ready.result()}"
            if self._ready.done() and not (self._ready.exception())
            else "not listening"
        )
        return f"<ExpectServer {self.name} {where}>"


class ExpectServerFactory:
    """Starts :class:`ExpectServer` objects that share defaults, and stops them all.

    ``await factory(**overrides)`` (pytest-tcpclient's ``await tcpserver_factory()``) or
    ``factory.start(**overrides)`` start one; overrides are ``ExpectServer`` keywords.
    ``stop()``/``stop_sync()`` stop every server with its end-of-test checks and raise the
    first failure once all are closed; ``close()`` closes them all without checks.
    """

    def __init__(self, **defaults: Any) -> None:
        ExpectServer(**defaults)  # validate the defaults now (not started: nothing to free)
        self._defaults = defaults
        self._servers: list[ExpectServer] = []

    @property
    def servers(self) -> tuple[ExpectServer, ...]:
        return tuple(self._servers)

    def server_on_port(self, port: object) -> ExpectServer | None:
        """The started server listening on ``port``, if one of ours is."""
        for server in self._servers:
            ready = server._ready
            if ready.done() and ready.exception() is None and ready.result() == port:
                return server
        return None

    def _new(self, overrides: dict[str, Any]) -> ExpectServer:
        server = ExpectServer(**{**self._defaults, **overrides})
        self._servers.append(server)
        return server

    async def __call__(self, **overrides: Any) -> ExpectServer:
        return await self._new(overrides)._astart()

    def start(self, **overrides: Any) -> ExpectServer:
        return self._new(overrides).start()

    def stop_sync(self) -> None:
        __tracebackhide__ = True
        errors: list[Exception] = []
        for server in self._servers:
            try:
                server.stop_sync()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    async def stop(self) -> None:
        __tracebackhide__ = True
        errors: list[Exception] = []
        for server in self._servers:
            try:
                await server.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for server in self._servers:
            server.close()
