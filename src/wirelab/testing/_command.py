"""The thread-backed command servers; the script language is described in ``_command_script``."""

from __future__ import annotations

import contextlib
import functools
import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Self, TypeVar

from .._exceptions import UsageError
from ._command_script import (
    CHUNK,
    DISCONNECTS,
    RECEIVE,
    Command,
    ScriptServerBase,
    Step,
    describe,
    receive_goal,
)
from ._transcript import Transcript

__all__ = [
    "RECEIVE",
    "Command",
    "CommandServer",
    "GenericServer",
    "OneShotServer",
    "TestTCPServer",
]

_T = TypeVar("_T")


class _Stopped(Exception):
    """Raised inside the server thread when stop() interrupts a wait."""


class _Failed(_Stopped):
    """Raised inside the server thread after a server error was kept: serve no more."""


class CommandServer(ScriptServerBase):
    """A TCP server in a background thread that runs a script for each connection.

    It listens and serves from the constructor on, as the classic server did, so
    ``server.port`` is known at once; ``start()`` (and ``with``) are then no-ops that
    return the server. ``stop()`` ends it for good.

    Connections are served one at a time, in the order they arrive; each gets the whole
    script, then is closed (later connections wait in the listen backlog meanwhile). With
    ``max_connections`` the server stops by itself after that many connections.

    ``stop()`` is prompt (a wake-up socket interrupts any wait: accept, receive, or a send
    stuck on a client that does not read), closes the listening socket and joins the
    thread. Any number of servers may run at once, each on its own port.

    ``verbose=True`` logs each command and its bytes at INFO to the ``wirelab.testing``
    logger. Callables run in the server thread with the socket in blocking mode; they
    must not block forever, since ``stop()`` cannot interrupt them.
    """

    join_timeout: float = 5.0
    """How long stop() waits for the thread (only a blocked callable takes this long)."""

    STOPPED: bool = False
    """The classic class-level flag: reset when a server is created, set by ``stop()``.
    Informational: setting it stops nothing (several servers may run at once)."""

    def __init__(
        self,
        commands: Sequence[Command] | str | bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        *,
        max_connections: int | None = None,
        exact: bool = False,
    ) -> None:
        super().__init__(
            commands, host, port, verbose, max_connections=max_connections, exact=exact
        )
        CommandServer.STOPPED = False
        self._say("initialized")
        self.start()

    def _init_serving(self) -> None:
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._listener: socket.socket | None = None
        self._transcript = Transcript()  # of the connection being served
        self._custom_conn: socket.socket | None = None  # handed to a custom server()
        self._selector: selectors.BaseSelector | None = None

    def start(self) -> Self:
        """Bind, listen and start serving (the constructor does); the port is bound when
        this returns. Idempotent while serving; a stopped server cannot start again."""
        if self._thread is not None:
            if self._stopping.is_set():
                raise UsageError(f"{self!r}: start() after stop(); create a new server")
            return self
        listener = self._listen()
        try:
            self._wake = socket.socketpair()
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._wake[0], selectors.EVENT_READ)
        except BaseException:
            listener.close()
            self._close_wake_and_selector()
            raise
        self._listener = listener
        self._thread = threading.Thread(
            target=self._run, name=f"wirelab-command-server-{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Interrupt whatever the server is doing, close it, join the thread, then
        re-raise a server error if there was one. Safe to call more than once."""
        thread = self._thread
        if thread is None:
            return
        if thread is threading.current_thread():
            raise UsageError(f"{self!r}: stop() called from the server thread")
        CommandServer.STOPPED = True
        self.STOPPED = True
        self._stopping.set()
        with self._wake_lock:
            if self._wake is not None:
                self._wake[1].send(b"x")
            if self._custom_conn is not None:  # wake a custom server() blocked on it
                with contextlib.suppress(OSError):
                    self._custom_conn.shutdown(socket.SHUT_RDWR)
        self._join(thread, self.join_timeout, "stop()")
        self.check()

    def wait(self, timeout: float | None = 5.0) -> None:
        """Wait until the server has served ``max_connections`` connections and stopped;
        raise :class:`~wirelab.TimeoutError` if it has not within ``timeout`` seconds.
        Then re-raise a server error, like check()."""
        self._join(self._waitable(self._thread), timeout, "wait()")
        self.check()

    def _join(self, thread: threading.Thread, timeout: float | None, what: str) -> None:
        thread.join(timeout)
        if thread.is_alive():
            raise self._timed_out(what, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        """Stop; if the block raised, a server error becomes a note on that exception
        instead of replacing it (the test's own error is the one to report)."""
        if exc is None:
            self.stop()
            return
        try:
            self.stop()
        except Exception as error:
            exc.add_note(f"{self!r} also failed: {type(error).__name__}: {error}")

    # -- the server thread ------------------------------------------------------------

    def _run(self) -> None:
        assert self._listener is not None
        listener = self._listener
        number = 0
        try:
            while self.max_connections is None or number < self.max_connections:
                try:
                    conn, peer = self._io(listener, selectors.EVENT_READ, listener.accept)
                except ConnectionAbortedError:  # reset while in the backlog (BSD, Windows)
                    continue
                number += 1
                with conn:
                    self._serve(conn, number, peer)
                if self._stopping.is_set():
                    break
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc, None, f"accept() of connection #{number + 1}")
        finally:
            self._close_listener(listener, number)
            self._close_wake_and_selector()
            CommandServer.STOPPED = True  # also when it stops by itself (max_connections)
            self.STOPPED = True

    def _close_wake_and_selector(self) -> None:
        with self._wake_lock:
            if self._selector is not None:
                self._selector.close()
            for sock in self._wake or ():
                sock.close()
            self._wake = self._selector = None

    def _serve(self, conn: socket.socket, number: int, peer: object) -> None:
        transcript = self._new_transcript(number, peer)
        self._transcript = transcript
        try:
            if type(self).server is CommandServer.server:
                self._script(conn, transcript)
            else:
                self._custom(conn, number)
        except DISCONNECTS as exc:
            self._disconnected(transcript, f"connection #{number}", exc)
        except _Failed:
            raise
        except BaseException as exc:
            self._fail(exc, transcript, f"connection #{number} server()")
            raise _Failed from None  # an error stops the server: do not serve on
        finally:
            self._finish(conn, transcript, number)

    def _custom(self, conn: socket.socket, number: int) -> None:
        """Hand the connection to a classic custom ``server()``, in blocking mode;
        ``stop()`` shuts the connection down to wake it."""
        conn.setblocking(True)
        with self._wake_lock:
            if self._stopping.is_set():
                return
            self._custom_conn = conn
        try:
            self.server(self._listener, conn, number - 1)
        finally:
            with self._wake_lock:
                self._custom_conn = None

    def server(self, sock: socket.socket | None, conn: socket.socket, count: int) -> None:
        """Serve one connection (``count``: 0 for the first): run the script on ``conn``.

        The classic entry point: override it in a subclass (see :class:`TestTCPServer`) to
        serve connections with your own code; ``sock`` is the listening socket. The
        connection is closed cleanly after it returns.
        """
        self._script(conn, self._transcript)

    def _script(self, conn: socket.socket, transcript: Transcript) -> None:
        conn.setblocking(False)
        number = len(self.transcripts)
        where = f"connection #{number}"
        eof = False
        try:
            for index, step in enumerate(self.commands, 1):
                where = f"connection #{number} command #{index} ({describe(step)})"
                if step is RECEIVE or isinstance(step, int):
                    if eof:
                        transcript.add("event", note=f"{where}: skipped, client sent EOF")
                        self._got(b"", eof=True)
                        continue
                    data, eof = self._receive(conn, step, transcript, where)
                    self._got(data, eof)
                elif isinstance(step, bytes):
                    self._send(conn, step, transcript, where)
                else:
                    self._log("%s", where)
                    conn.setblocking(True)
                    step(conn)
                    if conn.fileno() == -1:
                        transcript.add("event", note=f"{where}: closed the connection")
                        return
                    conn.setblocking(False)
            transcript.add("event", note="script complete")
        except _Stopped:
            transcript.add("event", note=f"{where}: interrupted by stop()")
        except DISCONNECTS as exc:
            self._disconnected(transcript, where, exc)
        except BaseException as exc:
            self._fail(exc, transcript, where)
            raise _Failed from None
        finally:
            self._end_script(conn, transcript)

    def _io(self, sock: socket.socket, event: int, op: Callable[[], _T]) -> _T:
        """Run a non-blocking ``op``, waiting for ``event`` on ``sock`` while it would
        block; raise _Stopped as soon as stop() is called."""
        assert self._selector is not None
        while True:
            if self._stopping.is_set():
                raise _Stopped
            try:
                return op()
            except (BlockingIOError, InterruptedError):
                pass
            self._selector.register(sock, event)
            try:
                self._selector.select()
            finally:
                self._selector.unregister(sock)

    def _receive(
        self, conn: socket.socket, step: Step, transcript: Transcript, where: str
    ) -> tuple[bytes, bool]:
        """Run one receive command (see :func:`receive_goal`): what it got, and whether
        EOF was seen."""
        minimum, capped = receive_goal(step, self.exact)
        got = bytearray()
        try:
            while len(got) < minimum:
                size = min(CHUNK, minimum - len(got)) if capped else CHUNK
                recv = functools.partial(conn.recv, size)
                data = self._io(conn, selectors.EVENT_READ, recv)
                if not data:
                    self._eof(transcript, where, len(got))
                    return bytes(got), True
                got += data
        finally:
            self._record(transcript, "recv", bytes(got), where)
        return bytes(got), False

    def _send(self, conn: socket.socket, data: bytes, transcript: Transcript, where: str) -> None:
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                chunk = view[sent : sent + CHUNK]
                sent += self._io(conn, selectors.EVENT_WRITE, functools.partial(conn.send, chunk))
        finally:
            self._record(transcript, "send", data[:sent], where)


class OneShotServer(CommandServer):
    """A :class:`CommandServer` that serves one connection, then stops by itself.

    ``wait(timeout)`` blocks until that connection is done and re-raises server errors.
    """

    def __init__(
        self,
        commands: Sequence[Command] | str | bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__(commands, host, port, verbose, max_connections=1, exact=exact)


class GenericServer(CommandServer):
    """The classic base of the command servers: ``GenericServer(commands, host, port)``.

    A :class:`CommandServer` (quiet; the same script and hooks); kept for code that
    subclasses it.
    """

    def __init__(
        self, commands: Sequence[Command] | str | bytes, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(commands, host, port)


class TestTCPServer(CommandServer):
    """The classic base for custom servers: subclass it and implement
    ``server(sock, conn, count)``, called in the server thread for each connection
    (``conn`` in blocking mode, ``count`` 0 for the first, ``sock`` the listening socket).

    Listens from the constructor on (``.port``), ``stop()`` ends it; what ``server()``
    raises is re-raised by ``stop()``, like any server error.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        super().__init__([], host, port, verbose)

    def server(self, sock: socket.socket | None, conn: socket.socket, count: int) -> None:
        raise NotImplementedError("implement .server method")
