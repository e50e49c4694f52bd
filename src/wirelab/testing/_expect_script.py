"""The script methods of :class:`~wirelab.testing._expect.ExpectServer`, shared with the
:class:`ExpectedConnection` handles: each validates its arguments at once (raising
:class:`~wirelab.UsageError` in the caller) and queues one step."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._exceptions import UsageError
from ._expect_core import Step
from ._expect_match import FrameCodec, check_codec, describe_bytes, make_matcher
from ._expect_steps import Disconnect, ExpectData, ExpectDisconnect, Send
from ._transcript import Transcript

if TYPE_CHECKING:
    from ._expect import ExpectServer

__all__ = ["ExpectedConnection", "Predicate", "Regex", "ScriptMethods", "check_timeout"]

Regex = bytes | re.Pattern[bytes]
Predicate = Callable[[bytes], bool]


def check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise UsageError(f"timeout must be a number of seconds > 0, not {timeout!r}")
    return float(timeout)


def _as_bytes(data: object, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UsageError(f"{what} must be bytes, not {type(data).__name__}")
    return bytes(data)


class ScriptMethods:
    """The script methods, shared by the server (current connection) and connection handles."""

    def _server_and_slot(self) -> tuple[ExpectServer, int | None]:
        raise NotImplementedError

    def _add(self, make: Callable[[int | None], Step]) -> None:
        server, slot = self._server_and_slot()
        server._enqueue(make(slot))

    def expect_bytes(
        self,
        expected_bytes: bytes | None = None,
        timeout: float | None = None,
        *,
        prefix: bytes | None = None,
        regex: Regex | None = None,
        predicate: Predicate | None = None,
        size: int | None = None,
    ) -> None:
        """Expect the client to send bytes (give exactly one matcher).

        * ``expect_bytes(b"abc")``: exactly these bytes (reads ``len`` bytes, then compares);
        * ``expect_bytes(prefix=b"GET ", size=None)``: bytes starting with ``prefix``; reads
          ``size`` bytes (default ``len(prefix)``);
        * ``expect_bytes(regex=rb"...", size=None)``: without ``size`` the pattern is matched
          at the current position (like :func:`re.match`) against what has arrived, and
          consumes what it matched - end the pattern with something that fixes its end (a
          literal ``\\r\\n``), since a greedy tail would match whatever has arrived so far;
          with ``size`` it must match all of the ``size`` bytes (:func:`re.fullmatch`);
        * ``expect_bytes(predicate=fn, size=n)``: reads ``n`` bytes, ``fn(data)`` must be true.

        Fails on a mismatch, when the connection closes first, or after ``timeout`` seconds.
        """
        matcher = make_matcher(
            expected_bytes, prefix=prefix, regex=regex, predicate=predicate, size=size,
            framed=False,
        )  # fmt: skip
        checked = check_timeout(timeout)
        label = matcher.label("expect_bytes")
        self._add(lambda slot: ExpectData(slot, matcher, checked, None, label))

    def expect_frame(
        self,
        expected_payload: bytes | None = None,
        timeout: float | None = None,
        *,
        prefix: bytes | None = None,
        regex: Regex | None = None,
        predicate: Predicate | None = None,
        codec: FrameCodec | None = None,
    ) -> None:
        """Expect one frame (default: 4-byte big-endian length prefix, or the server's or
        the given ``codec``) whose payload is exactly ``expected_payload``, starts with
        ``prefix``, fully matches ``regex``, or satisfies ``predicate``."""
        matcher = make_matcher(
            expected_payload, prefix=prefix, regex=regex, predicate=predicate, size=None,
            framed=True,
        )  # fmt: skip
        checked = check_timeout(timeout)
        server, _ = self._server_and_slot()
        frames = server.codec if codec is None else check_codec(codec)
        label = matcher.label("expect_frame")
        self._add(lambda slot: ExpectData(slot, matcher, checked, frames, label))

    def send_bytes(self, data: bytes) -> None:
        """Send ``data`` to the client (queued after the steps before it; never blocks)."""
        payload = _as_bytes(data, "data")
        label = f"send_bytes({describe_bytes(payload)})"
        self._add(lambda slot: Send(slot, payload, label))

    def send_frame(self, payload: bytes, *, codec: FrameCodec | None = None) -> None:
        """Send one frame carrying ``payload`` (framed like ``expect_frame``)."""
        server, _ = self._server_and_slot()
        frames = server.codec if codec is None else check_codec(codec)
        wire = frames.encode(_as_bytes(payload, "payload"))
        label = f"send_frame({describe_bytes(bytes(payload))})"
        self._add(lambda slot: Send(slot, wire, label))

    def disconnect(self) -> None:
        """Close the connection from the server side (after sending what was queued)."""
        self._add(Disconnect)

    def expect_disconnect(self, timeout: float | None = None) -> None:
        """Expect the client to close the connection within ``timeout`` seconds.

        Fails if bytes that no step consumed are left (``Received unexpected data ...``),
        if the connection was reset, or if another connection arrived meanwhile that no
        ``expect_connect()`` claimed. A connection closed by ``disconnect()`` passes.
        """
        checked = check_timeout(timeout)
        self._add(lambda slot: ExpectDisconnect(slot, checked))


class ExpectedConnection(ScriptMethods):
    """Handle on the connection claimed by one ``expect_connect()``: script methods on it
    go to that connection, whatever ``expect_connect()`` came later."""

    def __init__(self, server: ExpectServer, slot: int) -> None:
        self._server = server
        self._slot = slot

    @property
    def number(self) -> int:
        """1-based: ``connection #1`` in messages is the first ``expect_connect()``."""
        return self._slot + 1

    @property
    def transcript(self) -> Transcript | None:
        """The connection's transcript, once its ``expect_connect()`` step has run."""
        return self._server._transcript_of(self._slot)

    def _server_and_slot(self) -> tuple[ExpectServer, int | None]:
        return self._server, self._slot

    def __repr__(self) -> str:
        return f"<ExpectedConnection #{self.number} of {self._server!r}>"
