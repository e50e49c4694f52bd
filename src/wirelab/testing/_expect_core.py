"""The inside of :class:`~wirelab.testing._expect.ExpectServer`: it all runs in the server's
own thread and event loop, never in the test's. The steps are in ``_expect_steps``.

Connections are accepted as soon as they arrive and read continuously into a per-connection
buffer (with a transcript), whatever the script says. The script is a queue of steps run
one after the other by a single task; each step waits, with its own deadline, for what it
needs, consumes bytes from a buffer, or sends. The first failing step stops the script:
later steps are dropped, as pytest-tcpclient does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import select
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from ._expect_client import ClientObserver
from ._expect_match import FrameCodec
from ._realsock import create_server
from ._transcript import Transcript

__all__ = ["Barrier", "Conn", "Core", "Failure", "Step", "StepFailed"]

_LOST_SOON = 5.0  # seconds: a safety cap on waiting for an already scheduled callback
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed step, as data: turned into an exception in the caller's thread."""

    message: str
    details: str = ""
    mismatch_offset: int | None = None


class StepFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Conn(asyncio.Protocol):
    """One accepted connection: its buffer of unconsumed bytes, its state, its transcript."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.number = 0
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.buffer = bytearray()
        self.consumed = 0  # stream offset of buffer[0]
        self.eof = False  # the client closed its sending side
        self.lost = False  # the transport is gone
        self.error: BaseException | None = None
        self.closed_by_server = False
        self.send_failed = False  # a send met a connection the client had reset
        self.claimed = False
        self.overlapped: tuple[Conn, ...] = ()  # connections still open when this one came
        self.transcript = Transcript("connection")
        self.gone: asyncio.Future[None] = core.loop.create_future()

    @staticmethod
    def factory(core: Core) -> Callable[[], Conn]:
        return lambda: Conn(core)

    @property
    def is_open(self) -> bool:
        return not (self.eof or self.lost or self.closed_by_server)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.core.connected(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.transcript.add("recv", data)
        self.core.notify()

    def eof_received(self) -> bool:
        self.eof = True
        self.transcript.add("event", note="client closed its sending side (EOF)")
        self.core.notify()
        return True  # keep our side open: a half-closed client may still wait for an answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = exc
            self.transcript.add("event", note=f"connection lost: {exc!r}")
        if not self.gone.done():
            self.gone.set_result(None)
        self.core.notify()

    def consume(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        self.consumed += count
        return data

    def write(self, data: bytes, note: str) -> None:
        assert self.transport is not None
        self.transcript.add("send", data, note)
        if self.lost or self.transport.is_closing():
            self.send_failed = not self.closed_by_server
        self.transport.write(data)
        if self.transport.is_closing() and not self.closed_by_server:
            self.send_failed = True  # the write failed (a reset): the transport is closing

    def close(self, note: str) -> None:
        self.closed_by_server = True
        self.transcript.add("event", note=note)
        if self.transport is not None:
            self.transport.close()

    async def was_reset(self) -> bool:
        """Whether the client reset the connection (e.g. closed it with unread data).

        A reset seen while reading or writing ends up in ``error``, but asyncio reports a
        write error one loop iteration late (and the failed ``send()`` has consumed the
        socket's pending error): a transport that is closing although we did not close
        it has its ``connection_lost`` already scheduled, and that is awaited (whatever
        the step's deadline, since it is imminent). After the client's EOF nothing
        reads any more, so a reset caused by bytes sent after that is found in
        ``SO_ERROR``.
        """
        if (
            self.transport is not None
            and self.transport.is_closing()
            and not (self.lost or self.closed_by_server)
        ):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LOST_SOON):
                    await asyncio.shield(self.gone)
        if isinstance(self.error, OSError) and self.error.errno in _RESET_ERRNOS:
            return True
        if self.transport is None or self.lost or self.closed_by_server:
            return False
        sock = self.transport.get_extra_info("socket")
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if sock else 0
        except OSError:
            return False
        if err in _RESET_ERRNOS:
            self.error = ConnectionResetError(err, "connection reset by peer")
            self.transcript.add("event", note="connection reset by the client")
            return True
        return False


class Step:
    """One script entry. ``label`` is the call as written; ``index`` its 1-based position;
    ``waits`` whether it waits (with ``timeout``, None meaning the server's default)."""

    label = "?"
    waits = False
    timeout: float | None = None

    def __init__(self, slot: int | None) -> None:
        self.slot = slot
        self.index = 0

    async def run(self, core: Core) -> None:
        raise NotImplementedError


class Barrier:
    """Not a step: resolved with the script's failure (or None) once every earlier step ran."""

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[Failure | None] = concurrent.futures.Future()

    def resolve(self, failure: Failure | None) -> None:
        if self.future.set_running_or_notify_cancel():
            self.future.set_result(failure)


class Core:
    """State of one server; touched only from its event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, name: str, timeout: float, codec: FrameCodec
    ) -> None:
        self.loop = loop
        self.name = name
        self.address = "?"
        self.timeout = timeout
        self.codec = codec
        self.listener: socket.socket | None = None
        self.attaching = 0  # accepted sockets whose transport is not made yet
        self.unattached: set[socket.socket] = set()  # accepted, their task not started yet
        self.tasks: set[asyncio.Task[None]] = set()
        self.conns: list[Conn] = []
        self.slots: list[Conn] = []  # slots[i]: the connection claimed by expect_connect #i+1
        self.queue: asyncio.Queue[Step | Barrier] = asyncio.Queue()
        self.failure: Failure | None = None
        self.closing = False
        self.changed = asyncio.Event()
        self.stop_requested = asyncio.Event()
        # Observers of in-process asyncio clients by their address ("host:port"); filled
        # from the client's thread (a dict item assignment is atomic).
        self.observers: dict[str, ClientObserver] = {}

    # -- connections -------------------------------------------------------------------

    def listen(self, host: str, port: int) -> int:
        """Bind and listen (OSError if impossible); return the port. Accepting is ours, not
        ``loop.create_server``'s, so that :meth:`settle` can know of every connection the
        kernel completed: in the backlog, being attached, or attached."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = create_server((host, port), family=family, backlog=128)
        listener.setblocking(False)
        self.listener = listener
        address = listener.getsockname()
        self.address = f"{address[0]}:{address[1]}"
        self.loop.add_reader(listener.fileno(), self._accept)
        return int(address[1])

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.closing:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors
                if self.failure is None:
                    self.failure = Failure(f"Internal error in {self.name}: accept(): {exc!r}")
                return
            self.attaching += 1
            self.unattached.add(sock)
            task = self.loop.create_task(self._attach(sock))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _attach(self, sock: socket.socket) -> None:
        self.unattached.discard(sock)  # from here on, closing it is this task's job
        try:
            sock.setblocking(False)
            await self.loop.connect_accepted_socket(Conn.factory(self), sock)
        except OSError:  # the client is already gone: nothing to observe
            sock.close()
        finally:
            self.attaching -= 1
            self.notify()

    def _backlog_ready(self) -> bool:
        if self.listener is None or self.closing:
            return False
        readable, _, _ = select.select([self.listener], [], [], 0)
        return bool(readable)

    async def settle(self, deadline: float) -> None:
        """Wait (until ``deadline`` at most) until every connection that the kernel has
        completed - every client ``connect()`` that returned - is in ``conns``."""
        while self.attaching or self._backlog_ready():
            if not await self.wait_change(deadline):
                return

    async def shutdown(self) -> None:
        """Stop accepting, abort every connection and wait until each socket is closed."""
        self.closing = True
        if self.listener is not None:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sock in self.unattached:  # their task was cancelled before it started
            sock.close()
        for conn in self.conns:
            if conn.transport is not None and not conn.lost:
                conn.transport.abort()
        await asyncio.gather(*(conn.gone for conn in self.conns))

    def connected(self, conn: Conn) -> None:
        if self.closing:
            assert conn.transport is not None
            conn.transport.abort()
            return
        conn.number = len(self.conns) + 1
        conn.overlapped = tuple(c for c in self.conns if c.is_open)
        conn.transcript.name = f"connection #{conn.number} from {conn.peer}"
        conn.transcript.add("event", note="client connected")
        self.conns.append(conn)
        self.notify()

    def notify(self) -> None:
        self.changed.set()

    async def wait_change(self, deadline: float) -> bool:
        """Wait for any connection event until ``deadline``; False when it passed."""
        remaining = deadline - self.loop.time()
        if remaining <= 0:
            return False
        self.changed.clear()
        try:
            async with asyncio.timeout(remaining):
                await self.changed.wait()
        except TimeoutError:
            return False
        return True

    def deadline(self, timeout: float | None) -> float:
        return self.loop.time() + (self.timeout if timeout is None else timeout)

    # -- the script ----------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, Barrier):
                item.resolve(self.failure)
            elif self.failure is None:
                try:
                    await item.run(self)
                except StepFailed as exc:
                    self.failure = exc.failure
                except Exception as exc:
                    self.failure = Failure(
                        f"Internal error in {self.name} while running {item.label}: {exc!r}",
                        "".join(traceback.format_exception(exc)),
                    )

    def drain(self) -> None:
        """At shutdown: resolve every waiting join, drop every pending step."""
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, Barrier):
                item.resolve(self.failure)

    def on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self.failure is None:
            exc = context.get("exception")
            self.failure = Failure(
                f"Internal error in {self.name}: {context.get('message', 'unknown error')}",
                "".join(traceback.format_exception(exc)) if exc is not None else str(context),
            )

    def conn_for(self, step: Step) -> Conn:
        if step.slot is None:
            self.fail(step, f"Missing `expect_connect()` before `{step.label}`")
        return self.slots[step.slot]

    def fail(
        self, step: Step, message: str, conn: Conn | None = None, extra: str = "", **kw: Any
    ) -> NoReturn:
        head = f"{self.name} on {self.address}: step {step.index}, {step.label}"
        if step.waits:
            head += f" (timeout {self.timeout if step.timeout is None else step.timeout:g} s)"
        parts = [head, f"failed: {message}"]
        if extra:
            parts.append(extra)
        if conn is not None:
            conn.transcript.add("event", note=f"step {step.index} FAILED")
        conns = [conn] if conn is not None else self.conns
        parts.extend(str(c.transcript) for c in conns)
        if not conns:
            parts.append("no client connected")
        raise StepFailed(Failure(message, "\n".join(parts), **kw))
