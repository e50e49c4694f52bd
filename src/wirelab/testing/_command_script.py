"""Scripts for the fake TCP servers (the classic "command list" test server, fixed).

A script is a list of commands, run in order for each connection:

``RECEIVE``
    One ``recv``: whatever has arrived (at least one byte), up to 64 KiB.
an ``int`` N
    Read at least N bytes (at least one for ``0``), in reads of up to 64 KiB, so bytes
    beyond the N that arrived with them are read too: the classic servers' semantics.
    With ``exact=True`` it reads exactly N more bytes instead: reads are capped at what is
    still missing, so bytes beyond the N stay in the kernel for the next command, and
    ``0`` does nothing.
``bytes`` / ``str``
    Send all of it (a ``str`` is encoded as UTF-8). Partial sends are retried until every
    byte is out, however large the payload.
a callable ``fn(sock)``
    Called with the connection socket, for anything else (half-close, reset, delay). What
    it raises is a server error (see below). If it closes the socket (say after setting
    ``SO_LINGER`` to zero, for a reset), the script ends there.

A ``str`` or ``bytes`` given instead of a list is shorthand for ``[RECEIVE, data]``.

Edge cases, fixed once here so that tests need not care:

* The client closing its sending side is not an error: receive commands after the EOF
  return nothing (noted in the transcript) while send commands still run, because a client
  may half-close and then wait for its answer. A client that goes away completely (reset,
  broken pipe) ends the script for that connection; the server moves on to the next one.
* An ``int`` command that meets EOF ends with what arrived (the shortfall is noted).
* ``received`` lists what each receive command got, as the classic servers did: the bytes,
  or ``None`` for a receive that met EOF before any byte (so
  ``b"".join(x for x in server.received if x)`` is everything the script read);
  ``received_bytes`` is every byte that arrived, the bytes no command read included.
  The subclass hooks ``withReceivedData(data)`` (after each receive command, with the same
  value) and ``atEOF(conn)`` (when the script of a connection ends, however it ends) run in
  the server; what they raise is a server error.
* After the script the server half-closes (the client sees EOF), reads what the client
  already sent without waiting (so the close does not turn into a reset that would destroy
  the answer; up to 16 MiB are kept), and closes. The same happens when
  :meth:`~CommandServer.stop` interrupts a script, so ``received`` has every byte that had
  arrived when ``stop()`` was called. Connections still waiting in the listen backlog
  when the server stops are accepted and closed the same way (closing the listener
  would reset them), with a transcript marked "not served".
* Anything else raised in the server (by a callable, or an unexpected ``OSError``) stops
  the server and is re-raised, once, by the next ``check()``, ``wait()``, ``stop()`` or
  ``__exit__``: the original exception, with a note naming the connection and command and
  a hexdump transcript of the connection.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, TypeVar

from .._exceptions import TimeoutError, UsageError
from ._realsock import RealSocket
from ._transcript import Transcript

if TYPE_CHECKING:
    import asyncio

__all__ = ["RECEIVE", "Command", "ScriptServerBase", "Step", "receive_goal"]

log = logging.getLogger("wirelab.testing")

_H = TypeVar("_H")


CHUNK: Final = 65536
"""Largest single ``recv``/``send``; also what one ``RECEIVE`` asks for."""

DRAIN_LIMIT: Final = 16 * 1024 * 1024
"""At most this much unread data is kept when a connection is closed."""


class _Receive(enum.Enum):
    RECEIVE = "RECEIVE"

    def __repr__(self) -> str:
        return "RECEIVE"


RECEIVE: Final = _Receive.RECEIVE
"""Command: one ``recv`` of whatever has arrived (up to 64 KiB)."""

Command: TypeAlias = (
    Literal[_Receive.RECEIVE]
    | int
    | bytes
    | bytearray
    | memoryview
    | str
    | Callable[[socket.socket], object]
)
"""One step of a script; see the module documentation."""

Step: TypeAlias = Literal[_Receive.RECEIVE] | int | bytes | Callable[[socket.socket], object]
"""A command after normalisation (text encoded, buffers copied to ``bytes``)."""

DISCONNECTS: Final = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def normalize_commands(commands: Sequence[Command] | str | bytes) -> tuple[Step, ...]:
    """Validate a script; raise :class:`~wirelab.UsageError` naming the bad command."""
    if isinstance(commands, str | bytes | bytearray | memoryview):
        commands = [RECEIVE, commands]
    steps: list[Step] = []
    for index, command in enumerate(commands, 1):
        if command is RECEIVE or callable(command):
            steps.append(command)
        elif isinstance(command, bool):  # an int subclass, but surely a mistake
            raise UsageError(f"command #{index}: {command!r} is not a command")
        elif isinstance(command, int):
            if command < 0:
                raise UsageError(f"command #{index}: byte count must be >= 0, got {command}")
            steps.append(command)
        elif isinstance(command, str):
            steps.append(command.encode())
        elif isinstance(command, bytes | bytearray | memoryview):
            steps.append(bytes(command))
        else:
            raise UsageError(
                f"command #{index}: expected RECEIVE, an int, bytes, str or a callable, "
                f"got {type(command).__name__}"
            )
    return tuple(steps)


def receive_goal(step: Step, exact: bool) -> tuple[int, bool]:
    """How a receive command reads: ``(minimum, capped)``. It reads until ``minimum``
    bytes arrived (or EOF); ``capped`` reads never ask for more than is still missing."""
    if step is RECEIVE:
        return 1, False
    assert isinstance(step, int)
    return (step, True) if exact else (max(step, 1), False)


def describe(step: Step) -> str:
    """Short human name of a step, for logs and error notes."""
    if step is RECEIVE:
        return "RECEIVE"
    if isinstance(step, int):
        return f"read {step} bytes"
    if isinstance(step, bytes):
        return f"send {len(step)} bytes"
    return f"call {getattr(step, '__qualname__', None) or repr(step)}"


def preview(data: bytes, limit: int = 80) -> str:
    """``repr`` of at most ``limit`` bytes, for one-line log messages."""
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


def format_transcript(transcript: Transcript, *, records: int = 8, limit: int = 128) -> str:
    """The last ``records`` records of a transcript, each hexdump cut at ``limit`` bytes.

    ``str(transcript)`` shows everything, which for a multi-megabyte connection would bury
    the interesting end of it.
    """
    return transcript.format(last=records, limit=limit)


class ScriptServerBase:
    """Bookkeeping shared by the thread and asyncio servers: script, transcripts, errors."""

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
        if max_connections is not None and max_connections < 1:
            raise UsageError(f"max_connections must be >= 1 or None, got {max_connections}")
        self.commands: tuple[Step, ...] = normalize_commands(commands)
        self.host = host
        self.verbose = verbose
        self.max_connections = max_connections
        self.exact = exact
        self.transcripts: list[Transcript] = []
        """One transcript per accepted connection, in order."""
        self.received: list[bytes | None] = []
        """What each receive command got, in order (``None``: EOF before any byte)."""
        self.numBytesSent = 0
        """Bytes sent by the scripts, over all connections (the classic name)."""
        self._requested_port = port
        self._port: int | None = None
        self._error: BaseException | None = None
        self._init_serving()

    def _init_serving(self) -> None:
        """Set up what one kind of server needs to serve (the last step of __init__)."""

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); available after start()."""
        if self._port is None:
            raise UsageError(f"{type(self).__name__}: the port is known after start()")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def received_bytes(self) -> bytes:
        """Every byte that arrived, over all connections, in order (the bytes that no
        receive command read included, see the module documentation)."""
        return b"".join(t.received for t in list(self.transcripts))

    # -- the classic subclass hooks ---------------------------------------------------

    def withReceivedData(self, data: bytes | None) -> None:
        """Called after each receive command with what it got (``None``: EOF)."""

    def atEOF(self, conn: socket.socket) -> None:
        """Called when the script of a connection ends, before the server closes it."""
        self._say(f"closing socket connection {_peer_port(conn)} after {self.numBytesSent} bytes")

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port is not None else "not started"
        return f"<{type(self).__name__} {where}, {len(self.commands)} commands>"

    def check(self) -> None:
        """Re-raise an error from the server, if there was one (each error is raised once)."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _waitable(self, handle: _H | None) -> _H:
        """Check the preconditions of ``wait()`` (``max_connections`` given, server
        started); return ``handle``, the server's thread or task."""
        if self.max_connections is None:
            raise UsageError(f"{self!r}: wait() needs max_connections; use stop()")
        if handle is None:
            raise UsageError(f"{self!r}: wait() before start()")
        return handle

    def _timed_out(self, what: str, timeout: float | None) -> TimeoutError:
        """The error for ``what`` (``"wait()"``, ``"stop()"``) not finishing in time, with
        the transcript of the latest connection."""
        last = self.transcripts[-1] if self.transcripts else None
        detail = "\n" + format_transcript(last) if last is not None else ""
        return TimeoutError(f"{self!r}: {what} timed out after {timeout} s{detail}")

    def _listen(self) -> socket.socket:
        """Bind a non-blocking listening socket to ``host`` and the requested port, and
        note the port bound; the socket is closed if any of that fails."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = RealSocket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._requested_port))
            listener.listen(128)
            listener.setblocking(False)
            self._port = listener.getsockname()[1]
        except BaseException:
            listener.close()
            raise
        return listener

    # -- helpers for the serving code -------------------------------------------------

    def _log(self, message: str, *args: object) -> None:
        if self.verbose:
            log.info("%r " + message, self, *args)

    def _say(self, line: str) -> None:
        """With ``verbose``, print one of the classic servers' ``SERVER: ...`` lines."""
        if self.verbose:
            print("SERVER: " + line, file=sys.stdout, flush=True)

    def _got(self, data: bytes, eof: bool) -> None:
        """Note what one receive command got, and call the hook."""
        chunk = None if eof and not data else data
        self.received.append(chunk)
        self._say("socket recv null" if chunk is None else f"received some {len(data)} bytes")
        self.withReceivedData(chunk)

    def _new_transcript(self, number: int, peer: object) -> Transcript:
        transcript = Transcript(name=f"connection #{number} from {peer}")
        transcript.add("event", note=f"accepted by {self!r}")
        self.transcripts.append(transcript)
        self._log("connection #%d from %s", number, peer)
        return transcript

    def _record(
        self, transcript: Transcript, direction: Literal["recv", "send"], data: bytes, where: str
    ) -> None:
        if data:
            transcript.add(direction, data, f"({where})")
        if direction == "send":
            self.numBytesSent += len(data)
            self._say(f"sent {len(data)} bytes")
        verb = "received" if direction == "recv" else "sent"
        self._log("%s: %s %d bytes %s", where, verb, len(data), preview(data))

    def _eof(self, transcript: Transcript, where: str, got: int) -> None:
        transcript.add("event", note=f"{where}: EOF after {got} bytes")
        self._log("%s: EOF after %d bytes", where, got)

    def _disconnected(self, transcript: Transcript, where: str, exc: BaseException) -> None:
        transcript.add("event", note=f"{where}: client went away ({exc!r}); script ended")
        self._log("%s: client went away (%r)", where, exc)

    def _fail(self, exc: BaseException, transcript: Transcript | None, where: str) -> None:
        """Keep the first error, annotated for the report, to be re-raised by check()."""
        note = f"raised on the server side of {self!r}, in {where}; re-raised in the test"
        if transcript is not None:
            note += "\n" + format_transcript(transcript)
        exc.add_note(note)
        self._log("failed %s: %r", where, exc)
        if self._error is None:
            self._error = exc

    def _end_script(self, conn: socket.socket, transcript: Transcript) -> None:
        """Call ``atEOF``; what it raises is a server error (kept, like any other)."""
        try:
            self.atEOF(conn)
        except Exception as exc:
            self._fail(exc, transcript, "atEOF()")

    def _reader_for(self, number: int) -> asyncio.StreamReader | None:
        """The stream reader fed by connection ``number`` (the asyncio server has them)."""
        return None

    def _finish(self, conn: socket.socket, transcript: Transcript, number: int) -> None:
        """Half-close, keep what already arrived, close. Reading first matters: closing a
        socket with unread data sends a reset, which can destroy the answer in flight."""
        reader = self._reader_for(number)
        with contextlib.suppress(OSError):  # a callable may have shut it down already
            conn.shutdown(socket.SHUT_WR)
        kept = 0
        try:
            conn.setblocking(False)
            # Bounded, because a client that keeps sending would otherwise keep us here.
            while kept < DRAIN_LIMIT and (data := conn.recv(CHUNK)):
                transcript.add("recv", data, "(not read by the script)")
                kept += len(data)
                if reader is not None:
                    reader.feed_data(data)
        except OSError:  # would block, or the client is gone: nothing more to keep
            pass
        transcript.add("event", note="closed by the server")
        if reader is not None:
            reader.feed_eof()

    def _close_listener(self, listener: socket.socket, number: int) -> None:
        """Close the listening socket. Connections already waiting in its backlog (the
        kernel completes handshakes before accept()) would be reset by the close, so they
        are accepted and closed cleanly first, with a transcript saying so."""
        with contextlib.suppress(OSError), listener:
            listener.setblocking(False)
            while True:
                conn, peer = listener.accept()  # until BlockingIOError: backlog empty
                number += 1
                with conn:
                    transcript = self._new_transcript(number, peer)
                    transcript.add("event", note="not served: the server was stopping")
                    self._finish(conn, transcript, number)


def _peer_port(conn: socket.socket) -> object:
    try:
        return conn.getpeername()[1]
    except (OSError, IndexError, TypeError):  # gone already, or not an IP socket
        return "?"
