"""AsyncScriptedServer: the asyncio-native scripted server, for async tests."""

from __future__ import annotations

import asyncio
import socket
import time
from types import TracebackType
from typing import Any, Self

from .._exceptions import TimeoutError as TransportTimeout
from .._exceptions import UsageError
from ._runner import Op, OpGen, RecvOp, SendOp, SleepOp, WaitStopOp
from ._server_base import ServerCore
from ._server_thread import GONE_ON_DISCONNECT, SocketIO

__all__ = ["AsyncScriptedServer"]


class _AsyncIO(SocketIO):
    """Performs a script's operations on one socket with the loop's ``sock_*`` methods."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(sock)
        self.loop = loop

    async def perform(self, op: Op) -> Any:
        sock, loop = self.sock, self.loop
        with GONE_ON_DISCONNECT:
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
            elif isinstance(op, WaitStopOp):
                await loop.create_future()  # until the server cancels this task
            else:
                return self.perform_now(op)
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

    def _init_executor(self) -> None:
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
                        if self._join_done():
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
        self._check_on_exit(exc)
