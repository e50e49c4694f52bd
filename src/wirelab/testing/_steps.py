"""Script steps: the base class, the sending steps and the steps that end a connection.

A script is a list of steps, run in order on one connection. Steps are immutable data (so
one script may serve many connections and both servers) whose ``run`` generator holds the
logic, performed by the executors of :mod:`._runner`. The receiving steps live in
:mod:`._steps_recv`.

Every fault step states what the *client* observes; the catalogue of faults is
:data:`wirelab.testing.FAULTS`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, Final, cast

from .._exceptions import UsageError
from ..framing import FrameCodec, LengthPrefixCodec
from ._runner import Conn, OpGen

__all__ = [
    "DEFAULT_TIMEOUT",
    "Close",
    "Drip",
    "FrameCodec",
    "HalfClose",
    "Reset",
    "Send",
    "SendFrame",
    "SendSegments",
    "Sleep",
    "Stall",
    "Step",
    "StopReading",
    "validate_script",
]

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds a receiving step waits for the client by default (for the whole step)."""


def short_repr(data: bytes, limit: int = 40) -> str:
    """``repr`` of at most ``limit`` bytes, with the total length when cut."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}...({len(data)} bytes)"


def as_bytes(name: str, value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise UsageError(f"{name} must be bytes, got {type(value).__name__}")


def check_number(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise UsageError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def check_count(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_timeout(value: object) -> None:
    if value is not None:
        check_number("timeout", value, positive=True)


def deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class Step:
    """Base class of script steps.

    Subclasses are frozen dataclasses; ``run(conn)`` is a generator performing the step.
    The class flags drive :func:`validate_script`: ``reads`` (consumes client bytes),
    ``writes`` (sends bytes) and ``ends`` (ends the connection, so must be last).
    """

    reads: ClassVar[bool] = False
    writes: ClassVar[bool] = False
    ends: ClassVar[bool] = False

    def run(self, conn: Conn) -> OpGen:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.run")

    def __repr__(self) -> str:
        parts: list[str] = []
        for f in dataclasses.fields(cast(Any, self)):
            if f.name.startswith("_") or not f.repr:
                continue
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
                continue
            if isinstance(value, bytes):
                text = short_repr(value)
            elif callable(value) and hasattr(value, "__qualname__"):
                text = value.__qualname__
            else:
                text = repr(value)
            parts.append(text if f.kw_only is False else f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(parts)})"


# -- sending -----------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Send(Step):
    """Send all of ``data``. A script that starts with Send makes the server speak first."""

    data: bytes
    writes = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", as_bytes("data", self.data))

    def run(self, conn: Conn) -> OpGen:
        yield from conn.send(self.data)


@dataclass(frozen=True, repr=False)
class SendSegments(Step):
    """Send ``data`` as separate writes of the given ``sizes``, with ``TCP_NODELAY`` on.

    ``sizes`` is one size or a list used in order, its last value repeating until the data
    is exhausted (the final segment may be shorter). ``gap`` seconds pass between segments
    so that each arrives as its own TCP segment. Client observes: fragmented reads (each
    ``recv`` returns at most one segment when it reads faster than the gap); a client that
    assumes one ``recv`` is one message breaks. Under TLS each segment is one TLS record.
    """

    data: bytes
    sizes: int | Sequence[int] = 1
    _: KW_ONLY
    gap: float = 0.005
    writes = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", as_bytes("data", self.data))
        sizes = (self.sizes,) if isinstance(self.sizes, int) else tuple(self.sizes)
        if not sizes:
            raise UsageError("sizes must not be empty")
        for size in sizes:
            check_count("each segment size", size, minimum=1)
        object.__setattr__(self, "sizes", sizes if len(sizes) > 1 else sizes[0])
        check_number("gap", self.gap)

    def segments(self) -> list[bytes]:
        """The segments, in order."""
        sizes = (self.sizes,) if isinstance(self.sizes, int) else tuple(self.sizes)
        out: list[bytes] = []
        pos = 0
        while pos < len(self.data):
            size = sizes[min(len(out), len(sizes) - 1)]
            out.append(self.data[pos : pos + size])
            pos += size
        return out

    def run(self, conn: Conn) -> OpGen:
        yield from conn.nodelay()
        for index, segment in enumerate(self.segments()):
            if index:
                yield from conn.sleep(self.gap)
            yield from conn.send(segment)


@dataclass(frozen=True, repr=False)
class SendFrame(Step):
    """Send ``payload`` framed by ``codec`` (4-byte big-endian length prefix by default).

    The frame is encoded when the step is created, so a payload the codec refuses (too
    large, or containing a delimiter) raises :class:`~wirelab.UsageError` at once.
    """

    payload: bytes
    _: KW_ONLY
    codec: FrameCodec = field(default_factory=LengthPrefixCodec)
    _frame: bytes = field(init=False, repr=False, compare=False, default=b"")
    writes = True

    def __post_init__(self) -> None:
        payload = as_bytes("payload", self.payload)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "_frame", self.codec.encode(payload))

    def run(self, conn: Conn) -> OpGen:
        yield from conn.send(self._frame)


@dataclass(frozen=True, repr=False)
class Drip(Step):
    """Send ``data`` slowly: ``chunk`` bytes at a time at ``bytes_per_second``.

    The schedule is kept against the start time, so the rate does not drift. ``TCP_NODELAY``
    is on. Client observes: slow reads of ``chunk`` bytes; a client with a total deadline
    times out while one with only a per-read timeout keeps going.
    """

    data: bytes
    bytes_per_second: float
    _: KW_ONLY
    chunk: int = 1
    writes = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", as_bytes("data", self.data))
        check_number("bytes_per_second", self.bytes_per_second, positive=True)
        check_count("chunk", self.chunk, minimum=1)

    def run(self, conn: Conn) -> OpGen:
        yield from conn.nodelay()
        start = time.monotonic()
        for pos in range(0, len(self.data), self.chunk):
            if pos:
                wait = start + pos / self.bytes_per_second - time.monotonic()
                yield from conn.sleep(wait)
            yield from conn.send(self.data[pos : pos + self.chunk])


@dataclass(frozen=True, repr=False)
class Sleep(Step):
    """Do nothing for ``seconds`` (a stop of the server interrupts it)."""

    seconds: float

    def __post_init__(self) -> None:
        check_number("seconds", self.seconds)

    def run(self, conn: Conn) -> OpGen:
        yield from conn.sleep(self.seconds)


# -- ending a connection -------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Close(Step):
    """Close gracefully with FIN (after TLS ``close_notify`` under TLS); must be last.

    Client observes: EOF (``recv`` returns ``b""``) once it has read what was sent. Input
    the script did not read is discarded first, because Linux answers a close with unread
    input by RST. A client that sends after the close gets ``EPIPE``/``ECONNRESET`` later.
    A script that simply runs out of steps ends the same way.
    """

    ends = True

    def run(self, conn: Conn) -> OpGen:
        yield from conn.close()


@dataclass(frozen=True, repr=False)
class HalfClose(Step):
    """Shut down the sending side (FIN) and keep reading; no sending step may follow.

    Client observes: EOF on ``recv``, while its own sends still succeed and reach the
    script's later receiving steps. Under TLS (1.3) a ``close_notify`` goes first.
    """

    def run(self, conn: Conn) -> OpGen:
        yield from conn.shutdown_write()


@dataclass(frozen=True, repr=False)
class Reset(Step):
    """Abort the connection with RST (``SO_LINGER`` on, timeout 0, then close); must be last.

    Client observes: ``ConnectionResetError`` (``ECONNRESET``) from its next ``recv`` or
    ``send``; bytes sent before the reset but not yet read by the client may be lost. As
    the first step, the RST may even arrive before a client's ``connect()`` with a timeout
    has returned, which then raises it. Unix sockets have no RST: there the client sees
    ``ECONNRESET`` only if the script left some of its input unread, and EOF otherwise.
    Under TLS, CPython 3.11's ``ssl`` module reports the reset as ``ssl.SSLEOFError``, or
    as EOF with the default ``suppress_ragged_eofs=True`` (asyncio reports
    ``ConnectionResetError``).
    """

    ends = True

    def run(self, conn: Conn) -> OpGen:
        yield from conn.reset()


@dataclass(frozen=True, repr=False)
class Stall(Step):
    """Neither read nor write again until the server stops; must be last.

    Client observes: a read timeout (nothing ever arrives). Its sends succeed until the
    kernel buffers fill. On server stop the connection is closed.
    """

    ends = True

    def run(self, conn: Conn) -> OpGen:
        conn.reading_stopped = True
        yield from conn.wait_stop("stalling until the server stops")


@dataclass(frozen=True, repr=False)
class StopReading(Step):
    """Never read from the client again; sending steps may follow.

    The server shrinks ``SO_RCVBUF`` on its listening socket when a script contains this
    step, so that the window stays small. When the script ends, the connection is held open
    (unread) until the server stops. Client observes: its ``send``/``sendall`` blocks once
    the buffers on both sides are full (a send timeout, or ``BlockingIOError`` on a
    non-blocking socket), after about 3 MB on Linux loopback (mostly the client's own
    send buffer, which the kernel grows up to 4 MB).
    """

    def run(self, conn: Conn) -> OpGen:
        conn.reading_stopped = True
        conn.note("stopped reading")
        yield from ()


def validate_script(script: object, where: str = "script") -> tuple[Step, ...]:
    """Check a script's shape; raise :class:`~wirelab.UsageError` naming the bad step.

    Steps that end the connection (:class:`Close`, :class:`Reset`, :class:`Stall`) must be
    last; no receiving step may follow :class:`StopReading`, and no sending step may follow
    :class:`HalfClose`.
    """
    if isinstance(script, Step):
        raise UsageError(f"{where} must be a list of steps, got a single step {script!r}")
    if isinstance(script, str | bytes) or not isinstance(script, Iterable):
        raise UsageError(f"{where} must be a list of steps, got {type(script).__name__}")
    steps = tuple(script)
    stopped = shut = False
    for index, step in enumerate(steps, 1):
        if not isinstance(step, Step):
            raise UsageError(f"{where}, step {index}: expected a Step, got {step!r}")
        if step.ends and index != len(steps):
            raise UsageError(
                f"{where}, step {index}: {step!r} ends the connection: it must be last"
            )
        if step.reads and stopped:
            raise UsageError(f"{where}, step {index}: {step!r} reads after StopReading()")
        if step.writes and shut:
            raise UsageError(f"{where}, step {index}: {step!r} sends after HalfClose()")
        stopped = stopped or isinstance(step, StopReading)
        shut = shut or isinstance(step, HalfClose)
    return steps
