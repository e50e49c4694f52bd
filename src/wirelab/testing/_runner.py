"""The script runner shared by :class:`ScriptedServer` and :class:`AsyncScriptedServer`.

Steps are data, and their logic is written once, as generators: a step's ``run(conn)``
yields I/O *operations* (:data:`Op`) and is sent back their results. An executor performs
the operations on a real socket: the thread-backed server with a selector, the asyncio
server with ``loop.sock_*``. TLS is done here too, sans-IO (``ssl.MemoryBIO``), so both
executors only ever move raw bytes, and every step works the same over TLS.

What an executor must do for each operation:

========================  ============================================================
:class:`RecvOp`           one ``recv`` of at most ``size`` bytes; ``b""`` at EOF. Past
                          ``deadline`` raise wirelab's ``TimeoutError``.
:class:`SendOp`           send all of ``data`` (one ``send`` call when it fits).
:class:`SleepOp`          wait until ``until`` (a ``time.monotonic`` value).
:class:`NoDelayOp`        set ``TCP_NODELAY`` (nothing on Unix sockets).
:class:`ShutdownOp`       ``shutdown(SHUT_WR)``: FIN.
:class:`DrainOp`          return what can be read right now without waiting.
:class:`ResetOp`          ``SO_LINGER`` on with timeout 0, then close: RST.
:class:`WaitStopOp`       wait until the server stops (never returns).
========================  ============================================================

A reset or broken connection raises :class:`ClientGone` into the generator. When the
server stops, the executor closes the generator (``GeneratorExit``) and the socket.
"""

from __future__ import annotations

import errno
import ssl
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from .._exceptions import NetworkError, TruncatedError, UsageError, WirelabError
from ._transcript import Transcript

if TYPE_CHECKING:
    from ._steps import Step

__all__ = [
    "ClientEOF",
    "ClientGone",
    "Conn",
    "DrainOp",
    "NoDelayOp",
    "Op",
    "OpGen",
    "RecvOp",
    "ResetOp",
    "ScriptError",
    "SendOp",
    "ShutdownOp",
    "SleepOp",
    "WaitStopOp",
    "run_connection",
]

CHUNK: Final = 65536
"""Largest single ``recv``."""

DISCONNECT_ERRNOS: Final = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN}
)


@dataclass(frozen=True, slots=True)
class RecvOp:
    size: int
    deadline: float | None


@dataclass(frozen=True, slots=True)
class SendOp:
    data: bytes


@dataclass(frozen=True, slots=True)
class SleepOp:
    until: float


@dataclass(frozen=True, slots=True)
class NoDelayOp:
    pass


@dataclass(frozen=True, slots=True)
class ShutdownOp:
    pass


@dataclass(frozen=True, slots=True)
class DrainOp:
    pass


@dataclass(frozen=True, slots=True)
class ResetOp:
    pass


@dataclass(frozen=True, slots=True)
class WaitStopOp:
    pass


Op: TypeAlias = RecvOp | SendOp | SleepOp | NoDelayOp | ShutdownOp | DrainOp | ResetOp | WaitStopOp
OpGen: TypeAlias = Generator[Op, Any, None]
"""What a step's ``run`` returns."""


class ClientGone(NetworkError):
    """The client reset the connection, or it broke (raised by executors)."""


class ClientEOF(TruncatedError):
    """The client closed its side while a step still needed bytes."""


class ScriptError(WirelabError, AssertionError):
    """A connection of a scripted server did not go as its script says.

    Raised in the test (by ``check()``, ``join()`` or on leaving the ``with`` block), not in
    the server. ``str()`` names the server, the connection and the step, gives the reason
    and ends with the connection's transcript as a hexdump. ``__cause__`` is the underlying
    error: :class:`~wirelab.ProtocolError` (the client sent other bytes than expected),
    :class:`~wirelab.TruncatedError` (it closed too early), :class:`~wirelab.TimeoutError`
    (it sent nothing in time), :class:`~wirelab.NetworkError` (it reset the connection),
    :class:`ssl.SSLError` (the TLS handshake failed), or whatever a user predicate raised.
    Being an :class:`AssertionError`, it reads as a test failure, not a crash.
    """

    def __init__(
        self,
        reason: str,
        *,
        server: str,
        connection: int,
        step_index: int | None,
        step: Step | None,
        transcript: Transcript,
    ) -> None:
        self.reason = reason
        self.server = server
        self.connection = connection
        self.step_index = step_index
        self.step = step
        self.transcript = transcript
        where = f"{server}, connection #{connection}"
        if step is not None and step_index is not None:
            where += f", step {step_index + 1} {step!r}"
        super().__init__(f"{where}: {reason}\n{transcript}")


class Conn:
    """One connection as the steps see it: buffered input, output, TLS and the transcript.

    ``buffer`` holds bytes received but not consumed by a step yet (plaintext under TLS);
    ``consumed`` is the stream offset of ``buffer[0]``. The generator methods are meant
    for ``yield from`` in a step's ``run``.
    """

    def __init__(
        self,
        transcript: Transcript,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.transcript = transcript
        self.buffer = bytearray()
        self.consumed = 0
        self.eof = False  # the client sent FIN (or TLS close_notify)
        self.reading_stopped = False
        self.write_shut = False
        self.finished = False  # a step closed or reset the socket
        self.step_index: int | None = None
        self._tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        if tls is not None:
            self._tls = tls.wrap_bio(self._in, self._out, server_side=True)

    @property
    def tls(self) -> bool:
        return self._tls is not None

    def note(self, text: str) -> None:
        """Add an event to the transcript."""
        self.transcript.add("event", note=text)

    # -- input --------------------------------------------------------------------

    def fill(self, deadline: float | None) -> Generator[Op, Any, bool]:
        """Receive more bytes into ``buffer``; False (and ``eof`` set) at the client's EOF."""
        if self.eof:
            return False
        if self.reading_stopped:
            raise UsageError("a step tried to read after StopReading()")
        data = yield from self._read(deadline)
        if not data:
            self.eof = True
            self.note("client closed its side (EOF)")
            return False
        self.buffer += data
        self.transcript.add("recv", data)
        return True

    def take(self, n: int) -> bytes:
        """Consume and return the first ``n`` buffered bytes."""
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        self.consumed += len(data)
        return data

    def eof_error(self, what: str) -> ClientEOF:
        have = f"; {len(self.buffer)} unconsumed bytes" if self.buffer else ""
        return ClientEOF(f"the client closed the connection while {what}{have}")

    def _read(self, deadline: float | None) -> Generator[Op, Any, bytes]:
        tls = self._tls
        if tls is None:
            data: bytes = yield RecvOp(CHUNK, deadline)
            return data
        while True:
            try:
                return tls.read(CHUNK)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            yield from self._flush()
            raw = yield RecvOp(CHUNK, deadline)
            if raw:
                self._in.write(raw)
            else:
                self._in.write_eof()

    # -- output -------------------------------------------------------------------

    def send(self, data: bytes) -> OpGen:
        """Send all of ``data`` (one TLS record per call under TLS)."""
        if not data:
            return
        if self._tls is None:
            yield SendOp(data)
        else:
            self._tls.write(data)
            yield from self._flush()
        self.transcript.add("send", data)

    def _flush(self) -> OpGen:
        out = self._out.read()
        if out:
            yield SendOp(out)

    def nodelay(self) -> OpGen:
        yield NoDelayOp()

    def sleep(self, seconds: float) -> OpGen:
        if seconds > 0:
            yield SleepOp(time.monotonic() + seconds)

    def shutdown_write(self) -> OpGen:
        """Send FIN (after TLS close_notify); reading goes on."""
        if self.write_shut:
            return
        yield from self._close_notify()
        yield ShutdownOp()
        self.write_shut = True
        self.note("server shut down its sending side (FIN)")

    def close(self) -> OpGen:
        """Close gracefully: FIN first, then discard unread input so close() sends no RST.

        A client that already reset the connection is no error here: it is closed anyway.
        """
        if self.finished:
            return
        try:
            yield from self.shutdown_write()
            if not self.reading_stopped and not self.eof:
                unread = yield DrainOp()
                if unread:
                    self.note(f"discarded {len(unread)} unread raw bytes before closing")
        except ClientGone as exc:
            self.note(f"client already gone at close: {exc}")
        self.finished = True
        self.note("server closed the connection")

    def reset(self) -> OpGen:
        self.finished = True
        self.note("server reset the connection (RST)")
        yield ResetOp()

    def wait_stop(self, why: str) -> OpGen:
        self.note(why)
        yield WaitStopOp()

    def _close_notify(self) -> OpGen:
        if self._tls is None:
            return
        try:
            self._tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # the peer's close_notify is not awaited
        except ssl.SSLError:
            return  # the TLS session is already broken; FIN alone
        yield from self._flush()

    # -- TLS handshake ------------------------------------------------------------

    def handshake(self, deadline: float | None) -> OpGen:
        tls = self._tls
        assert tls is not None
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                yield from self._flush()  # the alert, so the client learns why
                raise
            yield from self._flush()
            raw = yield RecvOp(CHUNK, deadline)
            if not raw:
                raise ClientEOF("the client closed the connection during the TLS handshake")
            self._in.write(raw)
        yield from self._flush()
        self.note(f"TLS handshake done ({tls.version()}, {tls.cipher()})")


def run_connection(
    conn: Conn,
    script: Sequence[Step],
    *,
    handshake_timeout: float | None,
    bad_tls: bool,
    allow_disconnect: bool,
    fail: Callable[[str, BaseException], None],
) -> OpGen:
    """Run one script on one connection; failures go to ``fail(reason, exc)``.

    The TLS handshake comes first. A failed handshake is expected (a quiet transcript
    event) when the server presents a bad certificate on purpose (``bad_tls``). When the
    steps run out the connection is closed with FIN, unless the script stopped reading, in
    which case it is held open until the server stops.
    """
    try:
        try:
            if conn.tls:
                timeout = handshake_timeout
                yield from conn.handshake(None if timeout is None else time.monotonic() + timeout)
        except (ssl.SSLError, ClientGone, ClientEOF) as exc:
            conn.note(f"TLS handshake failed: {exc}")
            if bad_tls:
                return  # the client rejected the bad certificate, as it should
            if isinstance(exc, ssl.SSLError) or not allow_disconnect:
                fail(f"the TLS handshake failed: {exc}", exc)
            return
        for index, step in enumerate(script):
            conn.step_index = index
            yield from step.run(conn)
            if conn.finished:
                return
        conn.step_index = None
        if conn.reading_stopped:
            yield from conn.wait_stop("script done; holding the connection open unread")
        else:
            yield from conn.close()
    except (ClientGone, ClientEOF) as exc:
        conn.note(f"client went away: {exc}")
        if not allow_disconnect:
            fail(str(exc), exc)
    except GeneratorExit:
        where = "" if conn.step_index is None else f" during step {conn.step_index + 1}"
        conn.note(f"server stopped{where}")
        raise
    except Exception as exc:
        conn.note(f"failed: {type(exc).__name__}: {str(exc).partition(chr(10))[0]}")
        fail(f"{type(exc).__name__}: {exc}", exc)
