"""ScriptedServer: the thread-backed scripted server, for synchronous tests."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Any, Final, Self

from .._exceptions import TimeoutError as TransportTimeout
from .._exceptions import UsageError
from ._realsock import real_socketpair
from ._runner import (
    CHUNK,
    DISCONNECT_ERRNOS,
    ClientGone,
    DrainOp,
    NoDelayOp,
    Op,
    OpGen,
    RecvOp,
    ResetOp,
    SendOp,
    ShutdownOp,
    SleepOp,
    WaitStopOp,
)
from ._server_base import ServerCore

__all__ = ["GONE_ON_DISCONNECT", "ScriptedServer", "SocketIO", "gone", "is_inet"]

_LINGER_RST = struct.pack("ii", 1, 0)


class _Stopped(Exception):
    """The server is stopping: raised by the executor, never thrown into a script."""


def gone(exc: OSError) -> Exception:
    """Translate an OSError on a connection: a disconnect becomes :class:`ClientGone`."""
    if exc.errno in DISCONNECT_ERRNOS:
        name = os.strerror(exc.errno) if exc.errno else str(exc)
        return ClientGone(f"the connection broke: {name} ({type(exc).__name__})")
    return exc


def is_inet(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6)


def reset_socket(sock: socket.socket) -> None:
    """Close with RST: SO_LINGER on with a zero timeout."""
    with contextlib.suppress(OSError):  # no SO_LINGER on this socket: a plain close
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()


def drain(sock: socket.socket) -> bytes:
    """What the socket can read right now, without waiting (sock is non-blocking)."""
    chunks = []
    while True:
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError, OSError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class _GoneOnDisconnect:
    """``with GONE_ON_DISCONNECT:`` re-raises a disconnect ``OSError`` as :class:`ClientGone`
    (see :func:`gone`); any other error passes unchanged."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if isinstance(exc, OSError):
            error = gone(exc)
            if error is not exc:
                raise error from exc


GONE_ON_DISCONNECT: Final = _GoneOnDisconnect()


class SocketIO:
    """What both executors do alike on one (non-blocking) socket: close it once, and
    perform the operations that never wait."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def perform_now(self, op: Op) -> bytes | None:
        """Perform a :class:`NoDelayOp`, :class:`ShutdownOp`, :class:`DrainOp` or
        :class:`ResetOp` (call it inside ``with GONE_ON_DISCONNECT``)."""
        sock = self.sock
        if isinstance(op, NoDelayOp):
            if is_inet(sock):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        elif isinstance(op, ShutdownOp):
            sock.shutdown(socket.SHUT_WR)
        elif isinstance(op, DrainOp):
            return drain(sock)
        elif isinstance(op, ResetOp):
            self.closed = True
            reset_socket(sock)
        else:  # pragma: no cover
            raise AssertionError(f"unknown operation {op!r}")
        return None


class _SyncIO(SocketIO):
    """Performs a script's operations on one socket, interruptible by the server's stop."""

    def __init__(self, sock: socket.socket, wake: socket.socket, stopping: threading.Event):
        super().__init__(sock)
        self.stopping = stopping
        self.selector = selectors.DefaultSelector()
        self.selector.register(wake, selectors.EVENT_READ)
        self.selector.register(sock, selectors.EVENT_READ)

    def close(self) -> None:
        self.selector.close()
        super().close()

    def _wait(self, events: int, deadline: float | None) -> bool:
        """Wait until the socket is ready (True) or the deadline passes (False)."""
        self.selector.modify(self.sock, events)
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = self.selector.select(timeout)
            if self.stopping.is_set():
                raise _Stopped
            if any(key.fileobj is self.sock for key, _ in ready):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def perform(self, op: Op) -> Any:
        if self.stopping.is_set():
            raise _Stopped
        sock = self.sock
        with GONE_ON_DISCONNECT:
            if isinstance(op, RecvOp):
                while True:
                    try:
                        return sock.recv(op.size)
                    except BlockingIOError:
                        pass
                    if not self._wait(selectors.EVENT_READ, op.deadline):
                        raise TransportTimeout("timed out waiting for the client to send")
            elif isinstance(op, SendOp):
                view = memoryview(op.data)
                while view:
                    try:
                        view = view[sock.send(view) :]
                    except BlockingIOError:
                        self._wait(selectors.EVENT_WRITE, None)
            elif isinstance(op, SleepOp):
                if self.stopping.wait(max(0.0, op.until - time.monotonic())):
                    raise _Stopped
            elif isinstance(op, WaitStopOp):
                self.stopping.wait()
                raise _Stopped
            else:
                return self.perform_now(op)
        return None


def drive(runner: OpGen, io: _SyncIO) -> None:
    """Run a script generator to the end, performing its operations; _Stopped escapes."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            op = runner.send(value) if error is None else runner.throw(error)
        except StopIteration:
            return
        value, error = None, None
        try:
            value = io.perform(op)
        except _Stopped:
            raise
        except Exception as exc:
            error = exc


class ScriptedServer(ServerCore):
    """A scripted TCP (or TLS, or Unix socket) server in background threads, for sync tests.

    ``ScriptedServer(script)`` runs ``script`` (a list of steps) on every connection;
    ``ScriptedServer(scripts=[s1, s2, ...], then=...)`` runs ``s1`` on the first connection,
    ``s2`` on the second, and so on. Connections beyond the scripts get, by ``then``:

    ``"error"`` (the default with ``scripts=``)
        reset, and reported as an error: an unplanned connection fails the test.
    ``"repeat-last"`` (the default with ``script``)
        the last script again.
    ``"refuse"``
        nothing: the listening socket closes after the last scripted connection is
        accepted, so later connects fail with ``ECONNREFUSED``. ``one_shot=True`` is
        ``then="refuse"`` with one script.
    ``"reset"`` / ``"close"``
        accepted and at once reset (RST) or closed (FIN).

    Connections are served concurrently, each in its own thread, in accept order.

    Listening: ``host`` (``127.0.0.1``; ``"::1"`` for IPv6) and ``port`` (0: any free
    port), or ``unix=True`` (a socket in a new temporary directory, removed on stop) or
    ``unix="/path"``. ``tls=True`` speaks TLS with a certificate from a throwaway CA
    (:attr:`ca`, :meth:`client_ssl_context`); ``tls=BadCert.EXPIRED`` etc. presents a bad
    certificate on purpose; an ``ssl.SSLContext`` is used as is. ``rcvbuf`` sets
    ``SO_RCVBUF`` on the listening socket (small by default when a script contains
    ``StopReading``).

    Errors: a connection that does not go as scripted is recorded as a
    :class:`ScriptError` (with the transcript) and re-raised in the test by :meth:`check`,
    :meth:`join`, :meth:`stop` or on leaving the ``with`` block (each error once; if the
    block itself raised, server errors are added to its exception as notes instead). The
    client going away (EOF where bytes were expected, reset, broken pipe) is such an error
    unless ``allow_disconnect=True``. Stopping the server interrupts running scripts
    without error: call :meth:`join` to require that they finish.

    Start and stop take well under a millisecond (a TLS server's first start, which makes
    the throwaway CA, about 60 ms); any number of servers may run at once.
    """

    join_timeout: float = 5.0
    """How long stop() waits for a thread (only a blocking user predicate takes long)."""

    def _init_executor(self) -> None:
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stopped = False

    def start(self) -> Self:
        """Bind, listen and start accepting; the address is known when this returns."""
        if self._acceptor is not None:
            raise UsageError(f"{self!r}: start() called twice")
        listener = self._open_listener()
        try:
            self._wake = real_socketpair()
        except BaseException:
            listener.close()
            self._remove_unix_path()
            raise
        self._acceptor = threading.Thread(
            target=self._accept_loop,
            args=(listener, self._wake[0]),
            name=f"wirelab-scripted-server {self._where()}",
            daemon=True,
        )
        self._acceptor.start()
        return self

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                selector.select()
                if self._stopping.is_set():
                    return
                try:
                    sock, peer = listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                number, _, runner = self._begin(peer)
                last = not self._accept_more()
                if last:  # refuse from now on, before the script can finish
                    selector.unregister(listener)
                    listener.close()
                thread = threading.Thread(
                    target=self._serve,
                    args=(sock, number, runner, wake),
                    name=f"wirelab-scripted-server {self._where()} #{number}",
                    daemon=True,
                )
                with self._lock:
                    self._threads = {t for t in self._threads if t.is_alive()}
                    self._threads.add(thread)
                thread.start()
                if last:
                    return
        except BaseException as exc:  # pragma: no cover - a bug or resource exhaustion
            self._record_error(exc)
        finally:
            selector.close()
            listener.close()

    def _serve(self, sock: socket.socket, number: int, runner: OpGen, wake: socket.socket) -> None:
        io = _SyncIO(sock, wake, self._stopping)
        try:
            drive(runner, io)
        except _Stopped:
            pass
        except BaseException as exc:  # pragma: no cover - a bug in the executor
            self._record_error(exc)
        finally:
            runner.close()
            io.close()
            self._end(number)

    def _shutdown(self) -> None:
        if self._acceptor is None or self._stopped:
            return
        with self._lock:
            ours = threading.current_thread() in (self._acceptor, *self._threads)
        if ours:
            raise UsageError(f"{self!r}: stop() called from the server's own thread")
        self._stopped = True
        self._stopping.set()
        assert self._wake is not None
        self._wake[1].send(b"x")
        with self._lock:
            threads = [self._acceptor, *self._threads]
        stuck = []
        for thread in threads:
            thread.join(self.join_timeout)
            if thread.is_alive():
                stuck.append(thread.name)
        if not stuck:
            for sock in self._wake:
                sock.close()
        self._remove_unix_path()
        if stuck:
            self._record_error(
                TransportTimeout(f"{self!r}: threads still running after stop(): {stuck}")
            )

    def stop(self) -> None:
        """Stop at once: interrupt every script (no error), close every socket, join the
        threads; then re-raise a server error not raised yet, like :meth:`check`.
        Safe to call more than once."""
        self._shutdown()
        self.check()

    def join(self, timeout: float | None = 5.0) -> None:
        """Wait until at least as many connections as there are scripts were accepted and
        every accepted connection finished its script; then :meth:`check`.

        Raises wirelab's :class:`~wirelab.TimeoutError` (with the transcripts of the
        connections still running) if that takes longer than ``timeout`` seconds. The
        server keeps running: more connections may come.
        """
        if self._acceptor is None:
            raise UsageError(f"{self!r}: join() before start()")
        with self._lock:
            done = self._lock.wait_for(self._join_done, timeout)
        if not done:
            raise TransportTimeout(self._join_failure(timeout))
        self.check()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()
        self._check_on_exit(exc)
