"""Noticing that a stream's client went away, without a task per stream.

ASGI tells an app that its client disconnected only through ``receive()``, which blocks
until then. A helper task per stream that awaits it cost a short stream measurably: the
task is created and scheduled, and at the end cancelled, stepped once more and awaited
(one more loop turn for the request). :class:`DisconnectWatch` steps the ``receive()``
coroutine itself instead: it runs it until it waits on an asyncio future and resumes it
from that future's done-callback, which is what a task does, minus the task. Ending the
watch is synchronous: the coroutine is closed where it waits.

This works with any server whose ``receive()`` awaits asyncio futures (uvicorn, hypercorn,
httpx's ASGI transport, Starlette's test client); a ``receive()`` that yields anything else
is reported as its error, as a task would report it. A server that can tell a lost
connection itself, for less, gives the runtime a ``watch_connection`` that makes a watch
of the same interface (:class:`Watch`; wirelab's server: ``server._lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._runtime import StreamRuntime

__all__ = ["DisconnectWatch", "Watch", "run_until_disconnect"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Watch(Protocol):
    """What :func:`run_until_disconnect` needs of a watch (:class:`DisconnectWatch`'s
    interface): it calls its ``on_disconnect`` once, from a loop callback, unless
    :attr:`disconnected` was already true when it was made, or after :meth:`close`."""

    disconnected: bool
    error: BaseException | None

    def gone(self) -> bool: ...

    def close(self) -> None: ...


class DisconnectWatch:
    """Calls ``receive()`` until it returns ``http.disconnect`` (or fails), then
    ``on_disconnect()`` once, from a loop callback.

    Watching starts in the constructor, which runs ``receive()`` until it waits: a
    disconnect (or failure) known at once sets :attr:`disconnected` without calling
    ``on_disconnect`` (the caller is running: it checks). :meth:`close` stops watching;
    ``on_disconnect`` is never called after it. :attr:`error` holds what ``receive()``
    raised, if it raised (then :attr:`disconnected` is true too).
    """

    __slots__ = ("_closed", "_coro", "_on_disconnect", "_receive", "_waiting", "disconnected",
                 "error")  # fmt: skip

    def __init__(self, receive: Receive, on_disconnect: Callable[[], object]) -> None:
        self._receive = receive
        self._on_disconnect = on_disconnect
        self._coro: Coroutine[Any, Any, Message] | None = None
        self._waiting: asyncio.Future[Any] | None = None
        self._closed = False
        self.disconnected = False
        self.error: BaseException | None = None
        self._step()

    def gone(self) -> bool:
        """:attr:`disconnected`, read now."""
        return self.disconnected

    def close(self) -> None:
        """Stop watching: the pending ``receive()`` is closed where it waits."""
        self._closed = True
        if self._waiting is not None:
            self._waiting.remove_done_callback(self._resume)
            self._waiting = None
        if self._coro is not None:
            coro, self._coro = self._coro, None
            with contextlib.suppress(RuntimeError):  # a receive() that ignores the close
                coro.close()

    def _resume(self, _future: object) -> None:
        if not self._closed:
            self._waiting = None
            self._step()
            if self.disconnected:
                self._on_disconnect()

    def _step(self) -> None:
        """Run ``receive()`` (again and again while it answers at once) until it waits."""
        while True:
            if self._coro is None:
                coro = self._receive()
                # The exact type first: an isinstance() against the abstract class is slow.
                assert type(coro) is CoroutineType or isinstance(coro, Coroutine), (
                    "receive() must be a coroutine function"
                )
                self._coro = coro
            try:
                yielded = self._coro.send(None)
            except StopIteration as stop:
                self._coro = None
                if stop.value.get("type") == "http.disconnect":
                    self.disconnected = True
                    return
                continue  # the request's body (empty for a GET): the disconnect comes later
            except asyncio.CancelledError:
                self._coro = None  # a future it awaited was cancelled: nothing to report
                self._closed = True
                return
            except Exception as exc:  # receive() failed: stop the stream, then report it
                self._coro = None
                self.disconnected, self.error = True, exc
                return
            self._wait_for(yielded)
            return

    def _wait_for(self, yielded: object) -> None:
        if yielded is None:  # a bare yield (asyncio.sleep(0)): go on at the next loop turn
            asyncio.get_running_loop().call_soon(self._resume, None)
            return
        if not isinstance(yielded, asyncio.Future) or not yielded._asyncio_future_blocking:
            self.close()
            self.disconnected = True
            self.error = RuntimeError(f"receive() yielded {yielded!r}, not an asyncio future")
            return
        yielded._asyncio_future_blocking = False  # as a task does: the yield was seen
        yielded.add_done_callback(self._resume)
        self._waiting = yielded


async def run_until_disconnect(
    runtime: StreamRuntime,
    receive: Receive,
    body: Coroutine[Any, Any, None],
    send: Send | None = None,
) -> None:
    """Run ``body`` in this task until it ends or the client goes away, whichever is first
    (counted in ``runtime.streams_disconnected``; an error of ``receive()`` is raised
    after that). The response's connection tells, when ``send`` is given and the runtime
    has a ``watch_connection`` that can watch it; else ``receive()`` does.

    The task is in ``runtime.active`` meanwhile: ``runtime.shutdown`` cancels it too, and
    the body tells the two apart by ``runtime.shutting_down``.
    """
    task = asyncio.current_task()
    assert task is not None

    def on_disconnect() -> None:
        task.cancel("wirelab: client disconnected")

    watch: Watch | None = None
    if send is not None and (watch_connection := runtime.watch_connection) is not None:
        watch = watch_connection(send, on_disconnect)
    if watch is None:
        watch = DisconnectWatch(receive, on_disconnect)
    if watch.disconnected:  # gone before the body started: it never runs
        body.close()
    else:
        runtime.active.add(task)
        try:
            await body
        except asyncio.CancelledError:
            if not watch.gone():  # a method: the callback changes it while the body waits
                raise
            task.uncancel()
        finally:
            watch.close()
            runtime.active.discard(task)
    if watch.disconnected:
        runtime.streams_disconnected += 1
    if watch.error is not None:
        raise watch.error
