"""The asyncio command server: same scripts and contracts as :class:`CommandServer`.

Two forms behind one name. Created in a coroutine (an event loop runs in the thread) without
``loop``/``reader``, it is asyncio-native: a task in the test's own loop. Created with
``loop=`` or ``reader=``, or where no event loop runs, it is the classic form: a
:class:`CommandServer` in a thread that feeds what it receives to the given reader through
``loop.call_soon_threadsafe``, stopped with a plain ``stop()``.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Sequence
from typing import Any

from .._exceptions import UsageError
from ._command import CommandServer
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

__all__ = ["AsyncioCommandServer"]


class AsyncioCommandServer(ScriptServerBase):
    """A :class:`CommandServer` as an asyncio task: ``async with``, ``await stop()``.

    Scripts, the sequential serving of connections, ``received``, ``transcripts``,
    ``verbose`` and error reporting work as for :class:`CommandServer`. Callables get the
    connection socket in non-blocking mode (use ``loop.sock_*`` on it); if they return an
    awaitable it is awaited.

    What the receive commands read is also fed to an :class:`asyncio.StreamReader`, one
    per connection, fed EOF when that connection closes, so a test can write
    ``await server.reader.readexactly(n)``. ``reader`` is the reader of the latest
    accepted connection, or, before the first one, the reader that the first connection
    will use; ``readers`` lists them all.

    It listens and serves from the constructor on (``port`` is known at once); ``await
    start()`` and ``async with`` are then no-ops that return the server.
    """

    def _init_serving(self) -> None:
        self.readers: list[asyncio.StreamReader] = []
        """One reader per connection (the first exists from the constructor on)."""
        self._task: asyncio.Task[None] | None = None

    def __new__(
        cls, commands: Sequence[Command] | str | bytes, loop: Any = None, reader: Any = None,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        if loop is not None or reader is not None or not _loop_running():
            if cls is not AsyncioCommandServer:  # the classic form would drop the subclass
                raise UsageError(
                    f"{cls.__name__}: with loop=/reader= or outside a running event loop, "
                    "subclass ClassicAsyncioCommandServer instead"
                )
            return ClassicAsyncioCommandServer(commands, loop, reader, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        commands: Sequence[Command] | str | bytes,
        loop: asyncio.AbstractEventLoop | None = None,  # given: the classic form instead
        reader: asyncio.StreamReader | None = None,
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
        self._say("initialized")
        listener = self._listen()
        self.readers.append(asyncio.StreamReader())
        self._task = asyncio.get_running_loop().create_task(
            self._run(listener), name=f"wirelab-command-server-{self._port}"
        )
        # A task cancelled before its first step never runs _run's cleanup: close here too.
        self._task.add_done_callback(lambda _: listener.close())

    @property
    def reader(self) -> asyncio.StreamReader:
        """The reader of the latest accepted connection (or of the coming first one)."""
        return self.readers[-1]

    async def start(self) -> AsyncioCommandServer:
        """Nothing to do (the constructor started it), unless it was stopped: then a
        UsageError. Kept so that ``await server.start()`` keeps working."""
        if self._task is not None and self._task.done():
            raise UsageError(f"{self!r}: start() after stop(); create a new server")
        return self

    async def stop(self) -> None:
        """Cancel the serving task, wait for it (the listener and connection are closed),
        then re-raise a server error if there was one. Safe to call more than once."""
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
        self.check()

    # Same signature as CommandServer.wait(); a missing connection must fail the test
    # with a transcript rather than hang it, so the timeout has a default.
    async def wait(self, timeout: float | None = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``max_connections`` connections were served and the server stopped;
        raise :class:`~wirelab.TimeoutError` if not within ``timeout`` seconds. Then
        re-raise a server error, like check()."""
        done, _ = await asyncio.wait([self._waitable(self._task)], timeout=timeout)
        if not done:
            raise self._timed_out("wait()", timeout)
        self.check()

    async def __aenter__(self) -> AsyncioCommandServer:
        return await self.start()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        """Stop; if the block raised, a server error becomes a note on that exception."""
        if exc is None:
            await self.stop()
            return
        try:
            await self.stop()
        except Exception as error:
            exc.add_note(f"{self!r} also failed: {type(error).__name__}: {error}")

    # -- the serving task -------------------------------------------------------------

    async def _run(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        number = 0
        try:
            while self.max_connections is None or number < self.max_connections:
                try:
                    conn, peer = await loop.sock_accept(listener)
                except ConnectionAbortedError:  # reset while in the backlog (BSD, Windows)
                    continue
                number += 1
                with conn:
                    if not await self._serve(conn, number, peer):
                        break
        except asyncio.CancelledError:
            # stop() cancelled us: ending is all that is asked, so the task finishes
            # normally instead of re-raising (stop() does not need to tell the two apart).
            pass
        except BaseException as exc:
            self._fail(exc, None, f"accept() of connection #{number + 1}")
        finally:
            self._close_listener(listener, number)

    def _reader_for(self, number: int) -> asyncio.StreamReader:
        while len(self.readers) < number:
            self.readers.append(asyncio.StreamReader())
        return self.readers[number - 1]

    async def _serve(self, conn: socket.socket, number: int, peer: object) -> bool:
        """Run the script on one connection; False when the server must stop serving."""
        conn.setblocking(False)
        transcript = self._new_transcript(number, peer)
        reader = self._reader_for(number)
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
                    data, eof = await self._receive(conn, step, transcript, reader, where)
                    self._got(data, eof)
                elif isinstance(step, bytes):
                    await self._send(conn, step, transcript, where)
                else:
                    self._log("%s", where)
                    result = step(conn)
                    if inspect.isawaitable(result):
                        await result
                    if conn.fileno() == -1:
                        transcript.add("event", note=f"{where}: closed the connection")
                        return True
            transcript.add("event", note="script complete")
        except asyncio.CancelledError:
            transcript.add("event", note=f"{where}: interrupted by stop()")
            return False
        except DISCONNECTS as exc:
            self._disconnected(transcript, where, exc)
        except BaseException as exc:
            self._fail(exc, transcript, where)
            return False  # an error stops the server: do not serve on
        finally:
            self._end_script(conn, transcript)
            self._finish(conn, transcript, number)
        return True

    async def _receive(
        self,
        conn: socket.socket,
        step: Step,
        transcript: Transcript,
        reader: asyncio.StreamReader,
        where: str,
    ) -> tuple[bytes, bool]:
        """Run one receive command (see ``receive_goal``): what it got, and whether EOF
        was seen."""
        loop = asyncio.get_running_loop()
        minimum, capped = receive_goal(step, self.exact)
        got = bytearray()
        try:
            while len(got) < minimum:
                size = min(CHUNK, minimum - len(got)) if capped else CHUNK
                data = await loop.sock_recv(conn, size)
                if not data:
                    self._eof(transcript, where, len(got))
                    return bytes(got), True
                got += data
                reader.feed_data(data)
        finally:
            self._record(transcript, "recv", bytes(got), where)
        return bytes(got), False

    async def _send(
        self, conn: socket.socket, data: bytes, transcript: Transcript, where: str
    ) -> None:
        # Chunk by chunk, so that an interrupted or failed send leaves a transcript that
        # says how far it got (to within one chunk).
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                chunk = view[sent : sent + CHUNK]
                await loop.sock_sendall(conn, chunk)
                sent += len(chunk)
        finally:
            self._record(transcript, "send", data[:sent], where)
            if sent < len(data):
                note = f"{where}: interrupted; up to {min(CHUNK, len(data) - sent)} more bytes"
                transcript.add("event", note=note + " may have gone out")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ClassicAsyncioCommandServer(CommandServer):
    """The classic ``AsyncioCommandServer(commands, loop=..., reader=...)``: a
    :class:`CommandServer` in a thread that feeds what each receive command got to
    ``reader`` and, when a connection's script ends, EOF, each through
    ``loop.call_soon_threadsafe`` (nothing is fed without a ``loop``, as before).

    Created by ``AsyncioCommandServer(...)`` outside a running event loop or with
    ``loop``/``reader``; used from synchronous code (``stop()``, not ``await``).
    """

    def __init__(
        self,
        commands: Sequence[Command] | str | bytes,
        loop: asyncio.AbstractEventLoop | None = None,
        reader: asyncio.StreamReader | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        *,
        max_connections: int | None = None,
        exact: bool = False,
    ) -> None:
        self.loop = loop
        self.reader = reader
        super().__init__(
            commands, host, port, verbose, max_connections=max_connections, exact=exact
        )

    def withReceivedData(self, data: bytes | None) -> None:
        loop, reader = self.loop, self.reader
        if loop is not None and reader is not None and data:
            self._say(f"feed_data {len(data)} bytes")
            loop.call_soon_threadsafe(reader.feed_data, data)

    def atEOF(self, conn: socket.socket) -> None:
        loop, reader = self.loop, self.reader
        if loop is not None and reader is not None:
            self._say("atEOF")
            loop.call_soon_threadsafe(reader.feed_eof)
