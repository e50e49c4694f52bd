"""The steps of an :class:`~wirelab.testing._expect.ExpectServer` script (run in its loop).

Messages that pytest-tcpclient has are reproduced verbatim; the constants below are those.
"""

from __future__ import annotations

from typing import NoReturn, cast

from .._exceptions import ProtocolError
from ._expect_client import ClientObserver
from ._expect_core import Conn, Core, Step
from ._expect_match import FrameCodec, Matcher, plural, split_frame
from ._transcript import hexdump

__all__ = [
    "Disconnect",
    "ExpectConnect",
    "ExpectData",
    "ExpectDisconnect",
    "FinalChecks",
    "Send",
    "await_disconnect",
]

CONNECT_TIMEOUT = "Timed out waiting for client to connect."
DISCONNECT_TIMEOUT = (
    "Timed out waiting for client to disconnect. Remember to call `writer.close()`."
)
SECOND_CONNECTION = "While waiting for client to disconnect a second connection was attempted."
NOT_CONNECTED = "Client is not connected. Did you forget to call `asyncio.open_connection`?"
RESET = "Connection was reset. Did client close writer prematurely?"
WAIT_CLOSED_TIMEOUT = "Timed out waiting for client to call `await writer.wait_closed()`."
UNREAD = "There is data sent by server that was not read by client: unread_bytes={!r}."


async def await_disconnect(core: Core, step: Step, conn: Conn, deadline: float) -> None:
    """Wait for the client to close ``conn``; fail on extra connections, unread bytes, resets."""
    timed_out = False
    while True:
        extra = [c for c in core.conns if not c.claimed and conn in c.overlapped]
        if extra:
            core.fail(
                step,
                SECOND_CONNECTION,
                extra=f"connection #{extra[0].number} from {extra[0].peer} arrived while "
                f"connection #{conn.number} was open, and no expect_connect() claimed it\n"
                + str(extra[0].transcript),
            )
        if not conn.is_open:
            observer = core.observers.get(conn.peer)
            if observer is not None:
                await _observed_close(core, step, conn, observer, deadline)
                return
            _unexpected_data(core, step, conn)
            if await conn.was_reset():
                core.fail(step, RESET, conn, _reset_hint(conn))
            return
        if timed_out:
            core.fail(step, DISCONNECT_TIMEOUT, conn)
        timed_out = not await core.wait_change(deadline)


def _unexpected_data(core: Core, step: Step, conn: Conn) -> None:
    if conn.buffer:
        data = bytes(conn.buffer)
        core.fail(
            step,
            f"Received unexpected data while waiting for client to disconnect. Data is {data!r}.",
            conn,
            f"unread bytes at stream offset {conn.consumed}:\n{hexdump(data)}",
        )


async def _observed_close(
    core: Core, step: Step, conn: Conn, observer: ClientObserver, deadline: float
) -> None:
    """The checks of a closed connection whose client is an observed asyncio client, in
    pytest-tcpclient's order: ``wait_closed()`` awaited, no unexpected data, no send that
    met a reset, every byte the server sent read by the client code.

    "A send that met a reset" is pytest-tcpclient's: a send that failed, or, when bytes
    were left unread, two or more sends that the test queued after it last waited for the
    server (``join``) and before the client's ``close()``. pytest-tcpclient's single event
    loop ran those after the close: the first one made the client's kernel reset, the next
    one failed.
    """
    while observer.close_called and not observer.wait_closed_called:
        if not await core.wait_change(deadline):
            core.fail(step, WAIT_CLOSED_TIMEOUT, conn)
    _unexpected_data(core, step, conn)
    if conn.send_failed:
        core.fail(step, RESET, conn, _reset_hint(conn))
    sent = conn.transcript.sent
    unread = sent[observer.consumed :]
    if unread and observer.pending_sends_at_close >= 2:
        core.fail(step, RESET, conn, _reset_hint(conn))
    if unread:
        core.fail(
            step,
            UNREAD.format(unread),
            conn,
            f"the client code read {observer.consumed} of the {len(sent)} bytes the server "
            f"sent, then closed; unread:\n{hexdump(unread)}",
        )


def _reset_hint(conn: Conn) -> str:
    sent = len(conn.transcript.sent)
    return (
        f"the client reset the connection instead of closing it cleanly; the server had sent "
        f"{sent} bytes on it. A reset on close usually means the client closed its socket "
        "with data it had not read yet (the server cannot tell how much it read)."
    )


class ExpectConnect(Step):
    label = "expect_connect()"
    waits = True

    def __init__(self, slot: int, timeout: float | None) -> None:
        super().__init__(slot)
        self.timeout = timeout

    async def run(self, core: Core) -> None:
        deadline = core.deadline(self.timeout)
        timed_out = False
        while True:
            conn = next((c for c in core.conns if not c.claimed), None)
            if conn is not None:
                conn.claimed = True
                core.slots.append(conn)
                assert len(core.slots) == cast(int, self.slot) + 1
                conn.transcript.add("event", note=f"step {self.index}: expect_connect() matched")
                return
            if timed_out:
                core.fail(self, CONNECT_TIMEOUT)
            timed_out = not await core.wait_change(deadline)


class ExpectData(Step):
    """``expect_bytes`` (``codec`` is None) or ``expect_frame``."""

    waits = True

    def __init__(
        self,
        slot: int | None,
        matcher: Matcher,
        timeout: float | None,
        codec: FrameCodec | None,
        label: str,
    ) -> None:
        super().__init__(slot)
        self.matcher = matcher
        self.timeout = timeout
        self.codec = codec
        self.label = label
        self.desc = matcher.describe(framed=codec is not None)

    async def run(self, core: Core) -> None:
        conn = core.conn_for(self)
        deadline = core.deadline(self.timeout)
        timed_out = False
        while True:
            if self.attempt(core, conn):
                return
            if not conn.is_open:
                await self.closed(core, conn)
            if timed_out:
                frame = "frame " if self.codec is not None else ""
                core.fail(
                    self, f"Timed out waiting for {frame}{self.desc}", conn, self.so_far(conn)
                )
            timed_out = not await core.wait_change(deadline)

    def attempt(self, core: Core, conn: Conn) -> bool:
        start = conn.consumed
        if self.codec is not None:
            try:
                frame = split_frame(self.codec, bytes(conn.buffer))
            except ProtocolError as exc:
                core.fail(
                    self,
                    f"Expected to get frame {self.desc} but got an invalid frame: {exc}",
                    conn,
                    self.so_far(conn),
                )
            if frame is None:
                return False
            data, used = frame
            conn.consume(used)
        else:
            size = self.matcher.extent()
            if size is None:
                size = self.matcher.stream_match(bytes(conn.buffer))
                if size is None:
                    return False
            elif len(conn.buffer) < size:
                return False
            data = conn.consume(size)
        try:
            ok = self.matcher.accepts(data)
        except Exception as exc:
            core.fail(self, f"The predicate of {self.label} raised {exc!r}", conn)
        if not ok:
            text, offset = self.matcher.explain(data, start=start, framed=self.codec is not None)
            if self.codec is not None:
                message = f"Expected to get frame {self.desc} but actually got frame {data!r}"
            else:
                message = f"Expected to read {self.desc} but actually read {data!r}"
            core.fail(self, message, conn, text, mismatch_offset=offset)
        conn.transcript.add("event", note=f"step {self.index}: {self.label} matched")
        return True

    async def closed(self, core: Core, conn: Conn) -> NoReturn:
        if conn.closed_by_server:
            core.fail(
                self,
                f"Cannot {self.label}: the server closed the connection with `disconnect()`.",
                conn,
            )
        if await conn.was_reset():
            core.fail(self, RESET, conn, _reset_hint(conn))
        partial = bytes(conn.buffer)
        if self.codec is None:
            message = (
                f"Expected to read {self.desc} but only read {partial!r} "
                "before the connection was closed."
            )
        elif not partial:  # pytest-tcpclient reads a clean EOF as an empty frame
            message = f"Expected to get frame {self.desc} but actually got frame b''"
        else:
            message = (
                f"Expected to get frame {self.desc} but the connection was closed "
                f"in the middle of a frame ({len(partial)} bytes)."
            )
        core.fail(self, message, conn, self.so_far(conn))

    def so_far(self, conn: Conn) -> str:
        partial = bytes(conn.buffer)
        text = (
            f"received and not consumed: {plural(len(partial), 'byte')} at stream offset "
            f"{conn.consumed}\n" + (hexdump(partial) or "(nothing)")
        )
        if self.codec is None and self.matcher.expected is not None and partial:
            wrong = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(self.matcher.expected, partial, strict=False))
                    if a != b
                ),
                None,
            )
            if wrong is not None:
                text += (
                    f"\nfirst mismatching byte: offset {wrong} "
                    f"(stream offset {conn.consumed + wrong})"
                )
        return text


class Send(Step):
    def __init__(self, slot: int | None, data: bytes, label: str) -> None:
        super().__init__(slot)
        self.data = data
        self.label = label

    async def run(self, core: Core) -> None:
        conn = core.conn_for(self)
        if conn.closed_by_server:
            core.fail(
                self,
                f"Cannot {self.label}: the server closed the connection with `disconnect()`.",
                conn,
            )
        if conn.lost or (conn.transport is not None and conn.transport.is_closing()):
            conn.transcript.add(
                "event", note=f"step {self.index}: {self.label} not sent, the connection is gone"
            )
            return
        conn.write(self.data, f"(step {self.index}: {self.label.partition('(')[0]})")


class Disconnect(Step):
    label = "disconnect()"

    async def run(self, core: Core) -> None:
        conn = core.conn_for(self)
        if not conn.closed_by_server:
            conn.close(f"step {self.index}: server closed the connection (disconnect())")


class ExpectDisconnect(Step):
    label = "expect_disconnect()"
    waits = True

    def __init__(self, slot: int | None, timeout: float | None) -> None:
        super().__init__(slot)
        self.timeout = timeout

    async def run(self, core: Core) -> None:
        deadline = core.deadline(self.timeout)
        if self.slot is None:
            await core.settle(deadline)  # a client whose connect() returned is "connected"
            if not core.conns:
                core.fail(self, NOT_CONNECTED)
            core.fail(self, "Missing `expect_connect()` before `expect_disconnect()`")
        await await_disconnect(core, self, core.slots[self.slot], deadline)


class FinalChecks(Step):
    """The end-of-test checks: pytest-tcpclient's implicit ``expect_disconnect()`` for every
    connection, and no connection left that no ``expect_connect()`` claimed."""

    label = "expect_disconnect() (implicit, at the end of the test)"
    waits = True

    async def run(self, core: Core) -> None:
        for conn in core.slots:
            await await_disconnect(core, self, conn, core.deadline(None))
        await core.settle(core.deadline(None))
        extra = next((c for c in core.conns if not c.claimed), None)
        if extra is not None:
            core.fail(
                self,
                f"Unexpected connection #{extra.number}: "
                "no `expect_connect()` was declared for it.",
                extra,
            )
