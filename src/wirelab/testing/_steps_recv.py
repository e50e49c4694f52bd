"""Script steps that receive from the client, and check what it sent.

Each receiving step has a ``timeout``: seconds for the whole step (``None``: no limit; a
stop of the server interrupts it anyway). Failures, re-raised in the test as
:class:`~wirelab.testing.ScriptError` with the transcript:

* the client sent other bytes than expected: :class:`~wirelab.ProtocolError`, with the
  offset of the first mismatching byte, as soon as the received bytes diverge;
* it closed its side before the step was satisfied: :class:`~wirelab.TruncatedError`;
* it sent nothing (enough) in time: :class:`~wirelab.TimeoutError`;
* it reset the connection: :class:`~wirelab.NetworkError`.

Bytes that arrive beyond what a step consumes stay buffered for the next step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from .._exceptions import ProtocolError, UsageError
from ..framing import Event, LengthPrefixCodec, StreamDecoder
from ..framing._frames import HEADER, PREAMBLE
from ._runner import CHUNK, Conn, Op, OpGen
from ._steps import (
    DEFAULT_TIMEOUT,
    FrameCodec,
    Step,
    as_bytes,
    check_count,
    check_timeout,
    deadline,
    short_repr,
)
from ._transcript import describe_mismatch, hexdump

__all__ = [
    "Expect",
    "ExpectEOF",
    "ExpectFrame",
    "ExpectStream",
    "Recv",
    "RecvExactly",
    "RecvUntil",
    "RecvUntilEOF",
]


def _need(
    conn: Conn, n: int, until: float | None, what: str, prefix: bytes | None = None
) -> Generator[Op, Any, None]:
    """Receive until ``n`` bytes are buffered; fail early once they diverge from ``prefix``."""
    base = conn.consumed
    while True:
        if prefix is not None:
            head = bytes(conn.buffer[: len(prefix)])
            if not prefix.startswith(head):
                raise ProtocolError(
                    "the client sent other bytes than expected\n"
                    + describe_mismatch(prefix, head, base=base, partial=len(head) < len(prefix))
                )
        if len(conn.buffer) >= n:
            return
        if not (yield from conn.fill(until)):
            raise conn.eof_error(f"{what} ({len(conn.buffer)} of {n} bytes received)")


def _until(
    conn: Conn,
    delimiter: bytes,
    max_bytes: int,
    until: float | None,
    what: str,
    prefix: bytes | None = None,
) -> Generator[Op, Any, bytes]:
    """Receive until ``delimiter``; return the bytes up to and including it."""
    scan = 0
    while True:
        if prefix is not None:
            yield from _need(conn, 0, until, what, prefix)
        end = conn.buffer.find(delimiter, scan)
        if end >= 0:
            if end + len(delimiter) > max_bytes:
                break
            return conn.take(end + len(delimiter))
        if len(conn.buffer) >= max_bytes:
            break
        scan = max(0, len(conn.buffer) - len(delimiter) + 1)
        if not (yield from conn.fill(until)):
            raise conn.eof_error(f"{what} (no {delimiter!r} in {len(conn.buffer)} bytes)")
    raise ProtocolError(
        f"no {delimiter!r} within the first {max_bytes} bytes from the client:\n"
        + hexdump(bytes(conn.buffer[:max_bytes]), start=conn.consumed, limit=256)
    )


@dataclass(frozen=True, repr=False)
class Recv(Step):
    """Receive whatever arrives next: what is buffered already, else one read (at least one
    byte, at most ``max_bytes``). How much that is depends on the client's writes and on
    timing; prefer :class:`RecvExactly` or :class:`RecvUntil` where the size is known."""

    max_bytes: int = CHUNK
    _: KW_ONLY
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        check_count("max_bytes", self.max_bytes, minimum=1)
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        if not conn.buffer and not (yield from conn.fill(deadline(self.timeout))):
            raise conn.eof_error("waiting for bytes")
        conn.take(min(len(conn.buffer), self.max_bytes))


@dataclass(frozen=True, repr=False)
class RecvExactly(Step):
    """Receive exactly ``n`` bytes."""

    n: int
    _: KW_ONLY
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        check_count("n", self.n)
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        yield from _need(conn, self.n, deadline(self.timeout), "waiting for bytes")
        conn.take(self.n)


@dataclass(frozen=True, repr=False)
class RecvUntil(Step):
    """Receive up to and including ``delimiter``; a :class:`~wirelab.ProtocolError` if it
    has not come within ``max_bytes`` bytes."""

    delimiter: bytes
    _: KW_ONLY
    max_bytes: int = CHUNK
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "delimiter", as_bytes("delimiter", self.delimiter))
        if not self.delimiter:
            raise UsageError("delimiter must not be empty")
        check_count("max_bytes", self.max_bytes, minimum=len(self.delimiter))
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        until = deadline(self.timeout)
        yield from _until(conn, self.delimiter, self.max_bytes, until, "waiting for bytes")


@dataclass(frozen=True, repr=False)
class RecvUntilEOF(Step):
    """Receive everything until the client closes its sending side (it may still read:
    sending steps may follow)."""

    _: KW_ONLY
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        until = deadline(self.timeout)
        while (yield from conn.fill(until)):
            pass
        conn.take(len(conn.buffer))


@dataclass(frozen=True, repr=False)
class ExpectEOF(Step):
    """Expect the client to close its sending side, with no more bytes before that."""

    _: KW_ONLY
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        if not conn.buffer and not (yield from conn.fill(deadline(self.timeout))):
            return
        raise ProtocolError(
            "expected EOF, but the client sent more:\n"
            + hexdump(bytes(conn.buffer), start=conn.consumed, limit=256)
        )


@dataclass(frozen=True, repr=False)
class Expect(Step):
    """Receive bytes and check them; the first mismatch fails the connection.

    Give exactly one check:

    * ``Expect(b"...")``: exactly these bytes (the step reads that many). Fails as soon as a
      received byte differs, reporting the offset of the first mismatching byte.
    * ``prefix=b"..."``: the bytes start with this (also fails early).
    * ``regex=rb"..."`` (bytes or a compiled bytes pattern): ``fullmatch`` of the bytes.
    * ``predicate=fn``: ``fn(bytes)`` returns a true value; what it raises fails the step.

    For the last three, say which bytes to check: ``until=b"\\r\\n"`` (up to the delimiter,
    which is consumed but not checked; at most ``max_bytes``) or ``size=N`` (exactly N).
    Without either, the step checks whatever arrives next, like :class:`Recv` (at least
    ``len(prefix)`` bytes), which depends on how the client's writes arrive.
    """

    data: bytes | None = None
    _: KW_ONLY
    prefix: bytes | None = None
    regex: bytes | re.Pattern[bytes] | None = None
    predicate: Callable[[bytes], object] | None = None
    size: int | None = None
    until: bytes | None = None
    max_bytes: int = CHUNK
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        checks = [self.data, self.prefix, self.regex, self.predicate]
        if sum(check is not None for check in checks) != 1:
            raise UsageError("Expect needs exactly one of data, prefix=, regex=, predicate=")
        for name in ("data", "prefix", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_bytes(name, value))
        if self.data is not None and (self.size is not None or self.until is not None):
            raise UsageError("Expect(data) reads len(data) bytes; size= and until= do not apply")
        if self.size is not None and self.until is not None:
            raise UsageError("give size= or until=, not both")
        if self.until == b"":
            raise UsageError("until must not be empty")
        if self.size is not None:
            check_count("size", self.size)
        if self.regex is not None:
            try:
                pattern = re.compile(self.regex)
            except (TypeError, re.error) as exc:
                raise UsageError(f"bad regex {self.regex!r}: {exc}") from exc
            if not isinstance(pattern.pattern, bytes):
                raise UsageError("regex must be a bytes pattern")
            object.__setattr__(self, "regex", pattern)
        if self.predicate is not None and not callable(self.predicate):
            raise UsageError(f"predicate must be callable, got {self.predicate!r}")
        check_count("max_bytes", self.max_bytes, minimum=1)
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        until = deadline(self.timeout)
        base = conn.consumed
        if self.data is not None:
            yield from _need(conn, len(self.data), until, "waiting for bytes", self.data)
            conn.take(len(self.data))
            return
        if self.until is not None:
            chunk = yield from _until(
                conn, self.until, self.max_bytes, until, "waiting for bytes", self.prefix
            )
            body = chunk[: -len(self.until)]
        elif self.size is not None:
            yield from _need(conn, self.size, until, "waiting for bytes", self.prefix)
            body = conn.take(self.size)
        else:
            need = max(1, len(self.prefix or b""))
            yield from _need(conn, need, until, "waiting for bytes", self.prefix)
            body = conn.take(min(len(conn.buffer), max(need, self.max_bytes)))
        self._check(body, base)

    def _check(self, body: bytes, base: int) -> None:
        dump = hexdump(body, start=base, limit=512)
        if self.prefix is not None and not body.startswith(self.prefix):
            raise ProtocolError(
                "the client's bytes lack the expected prefix\n"
                + describe_mismatch(self.prefix, body[: len(self.prefix)], base=base)
            )
        if isinstance(self.regex, re.Pattern) and self.regex.fullmatch(body) is None:
            raise ProtocolError(
                f"the client's {len(body)} bytes do not match {self.regex.pattern!r}:\n{dump}"
            )
        if self.predicate is not None and not self.predicate(body):
            name = getattr(self.predicate, "__qualname__", repr(self.predicate))
            raise ProtocolError(
                f"predicate {name} rejected the client's {len(body)} bytes:\n{dump}"
            )


@dataclass(frozen=True, repr=False)
class ExpectFrame(Step):
    """Receive one frame in ``codec``'s format and check its payload.

    ``expected`` is the exact payload, a predicate ``fn(payload) -> bool``, or ``None`` for
    any frame. Only the frame's bytes are consumed. A frame the codec rejects (oversize) is a
    :class:`~wirelab.ProtocolError`; EOF inside a frame a :class:`~wirelab.TruncatedError`.
    """

    expected: bytes | Callable[[bytes], object] | None = None
    _: KW_ONLY
    codec: FrameCodec = field(default_factory=LengthPrefixCodec)
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        if self.expected is not None and not callable(self.expected):
            object.__setattr__(self, "expected", as_bytes("expected", self.expected))
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        until = deadline(self.timeout)
        base = conn.consumed
        while (found := self.codec.next_frame(bytes(conn.buffer))) is None:
            if not (yield from conn.fill(until)):
                raise conn.eof_error("waiting for a frame")
        payload, used = found
        conn.take(used)
        expected = self.expected
        if isinstance(expected, bytes):
            if payload != expected:
                raise ProtocolError(
                    "the client's frame has another payload\n"
                    + describe_mismatch(expected, payload)
                )
        elif expected is not None and not expected(payload):
            name = getattr(expected, "__qualname__", repr(expected))
            raise ProtocolError(
                f"predicate {name} rejected the client's frame payload "
                f"{short_repr(payload)} (frame at stream offset {base})"
            )


@dataclass(frozen=True, repr=False)
class ExpectStream(Step):
    """Receive one body in the wirelab stream format, decoded and checked by
    :class:`~wirelab.framing.StreamDecoder`, up to and including its final frame.

    ``check(events)``, if given, gets the list of decoded events and must return a true
    value. A format violation is the decoder's :class:`~wirelab.ProtocolError`. Bytes after
    the final frame stay buffered for the next step.
    """

    check: Callable[[list[Event]], object] | None = None
    _: KW_ONLY
    verify: bool = True
    timeout: float | None = DEFAULT_TIMEOUT
    reads = True

    def __post_init__(self) -> None:
        check_timeout(self.timeout)

    def run(self, conn: Conn) -> OpGen:
        until = deadline(self.timeout)
        decoder = StreamDecoder(verify=self.verify)
        what = "waiting for a wirelab stream"
        yield from _need(conn, len(PREAMBLE), until, what)
        events = decoder.feed(conn.buffer[: len(PREAMBLE)])
        pos = len(PREAMBLE)
        while not decoder.finished:
            # Feed exactly one frame at a time, so nothing after the final frame is consumed;
            # the header first, so that the decoder checks the length before we wait.
            yield from _need(conn, pos + HEADER.size, until, what)
            _, length = HEADER.unpack_from(conn.buffer, pos)
            events += decoder.feed(conn.buffer[pos : pos + HEADER.size])
            pos += HEADER.size
            yield from _need(conn, pos + length, until, what)
            events += decoder.feed(conn.buffer[pos : pos + length])
            pos += length
        decoder.close()
        conn.take(pos)
        if self.check is not None and not self.check(events):
            name = getattr(self.check, "__qualname__", repr(self.check))
            raise ProtocolError(f"{name} rejected the stream's {len(events)} events: {events!r}")
