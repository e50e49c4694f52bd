"""AsyncScriptedServer: the asyncio-native scripted server, for async tests."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from .._exceptions import TimeoutError as TransportTimeout
from .._exceptions import UsageError
from ._runner import (
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
from ._server_base import Script, ServerCore, Then
from ._server_thread import drain, gone, is_inet, reset_socket
from ._steps import DEFAULT_TIMEOUT
from ._tls import BadCert

__all__ = ["AsyncScriptedServer"]


class _AsyncIO:
    """Performs a script's operations on one socket with the loop's ``sock_*`` methods."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.loop = loop
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    async def perform(self, op: Op) -> Any:
        sock, loop = self.sock, self.loop
        try:
            if isinstance(op, RecvOp):
                if op.deadline is None:
                    return await loop.sock_recv(sock, op.size)
                try:
                    async with asyncio.timeout(max(0.0, op.deadline - time.monotonic())):
                        return await loop.sock_recv(sock, op.size)
                except TimeoutError:
                    raise TransportTimeout("timed out waiting for the client to send") from None
            elif isinstance(op, SendOp):
                await loop.sock_sendall(sock, op.data)
            elif isinstance(op, SleepOp):
                await asyncio.sleep(max(0.0, op.until - time.monotonic()))
            elif isinstance(op, NoDelayOp):
                if is_inet(sock):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            elif isinstance(op, ShutdownOp):
                sock.shutdown(socket.SHUT_WR)
            elif isinstance(op, DrainOp):
                return drain(sock)
            elif isinstance(op, ResetOp):
                self.closed = True
                reset_socket(sock)
            elif isinstance(op, WaitStopOp):
                await loop.create_future()  # until the server cancels this task
            else:  # pragma: no cover
                raise AssertionError(f"unknown operation {op!r}")
        except OSError as exc:
            error = gone(exc)
            if error is exc:
                raise
            raise error from exc
        return None


async def drive(runner: OpGen, io: _AsyncIO) -> None:
    """Run a script generator to the end; cancellation (the server's stop) escapes."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            op = runner.send(value) if error is None else runner.throw(error)
        except StopIteration:
            return
        value, error = None, None
        try:
            value = await io.perform(op)
        except Exception as exc:
            error = exc


class AsyncScriptedServer(ServerCore):
    """The asyncio-native twin of :class:`ScriptedServer`: same arguments, same steps, same
    behaviour, but it runs as tasks in the test's event loop (no threads).

    Use ``async with AsyncScriptedServer(script) as server:``, or ``await start()`` and
    ``await stop()``; :meth:`join` is a coroutine too, :meth:`check` is not. User
    predicates run in the loop, so they must not block.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        scripts: Sequence[Script] | None = None,
        then: Then | None = None,
        one_shot: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        unix: bool | str | os.PathLike[str] = False,
        tls: bool | BadCert | ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
        allow_disconnect: bool = False,
        handshake_timeout: float | None = DEFAULT_TIMEOUT,
        backlog: int = 128,
    ) -> None:
        super().__init__(
            script,
            scripts=scripts,
            then=then,
            one_shot=one_shot,
            host=host,
            port=port,
            unix=unix,
            tls=tls,
            rcvbuf=rcvbuf,
            allow_disconnect=allow_disconnect,
            handshake_timeout=handshake_timeout,
            backlog=backlog,
        )
        self._acceptor: asyncio.Task[None] | None = None
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Accepted connections whose task has not cleaned up yet: a task cancelled before
        # it ever ran does not run its finally clause, so stop() cleans up for it.
        self._pending: dict[int, tuple[socket.socket, OpGen]] = {}
        self._changed = asyncio.Event()
        self._stopped = False

    async def start(self) -> Self:
        """Bind, listen and start accepting; the address is known when this returns."""
        if self._acceptor is not None:
            raise UsageError(f"{self!r}: start() called twice")
        listener = self._listener = self._open_listener()
        self._acceptor = asyncio.get_running_loop().create_task(
            self._accept_loop(listener), name=f"wirelab-scripted-server {self._where()}"
        )
        return self

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                sock, peer = await loop.sock_accept(listener)
                number, _, runner = self._begin(peer)
                self._pending[number] = (sock, runner)
                last = not self._accept_more()
                if last:
                    listener.close()  # refuse from now on, before the script can finish
                task = loop.create_task(
                    self._serve(sock, number, runner),
                    name=f"wirelab-scripted-server {self._where()} #{number}",
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                if last:
                    return
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # pragma: no cover - a bug or resource exhaustion
            self._record_error(exc)
        finally:
            listener.close()

    async def _serve(self, sock: socket.socket, number: int, runner: OpGen) -> None:
        io = _AsyncIO(sock, asyncio.get_running_loop())
        try:
            await drive(runner, io)
        except asyncio.CancelledError:
            pass  # stop(): the one who cancels is this server
        except Exception as exc:  # pragma: no cover - a bug in the executor
            self._record_error(exc)
        finally:
            self._pending.pop(number, None)
            runner.close()
            io.close()
            self._end(number)

    def _end(self, number: int) -> None:
        super()._end(number)
        self._changed.set()

    def _record_error(self, error: BaseException) -> None:
        super()._record_error(error)
        self._changed.set()

    async def _shutdown(self) -> None:
        if self._acceptor is None or self._stopped:
            return
        self._stopped = True
        tasks = [self._acceptor, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()  # the acceptor may have been cancelled before it ran
        for number, (sock, runner) in list(self._pending.items()):
            runner.close()
            sock.close()
            self._end(number)
        self._pending.clear()
        self._remove_unix_path()

    async def stop(self) -> None:
        """Stop at once (scripts are interrupted without error, sockets closed), then
        re-raise a server error not raised yet. Safe to call more than once."""
        await self._shutdown()
        self.check()

    async def join(self, timeout: float | None = 5.0) -> None:  # noqa: ASYNC109
        """Like :meth:`ScriptedServer.join`: wait for the scripted connections to finish."""
        if self._acceptor is None:
            raise UsageError(f"{self!r}: join() before start()")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with self._lock:
                        if self._join_done() or len(self._errors) > self._reported:
                            break
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TransportTimeout(self._join_failure(timeout)) from None
        self.check()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()
        if exc is None:
            self.check()
            return
        try:
            self.check()
        except BaseException as error:
            exc.add_note(f"{self!r} also failed: {type(error).__name__}: {error}")
