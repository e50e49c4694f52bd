"""A response's client going away, told by its connection instead of by ``receive()``.

ASGI tells an app that its client left only through ``receive()``, and the stream engine
watches it by stepping a ``receive()`` coroutine (``stream._disconnect.DisconnectWatch``):
for a short stream that was about 7 % of the server's instructions (``request_cost.py``:
36 k of 514 k; uvicorn's ``receive`` makes an event's future, resumes reading, and is
closed where it waits). On wirelab's own protocol (``_http_guard``) the connection itself
calls back when it is lost: :func:`watch_connection` registers that call for a response,
and costs a few attribute writes.

What counts as a disconnect is what makes uvicorn's ``receive()`` answer
``http.disconnect`` while a response is sent: the connection was lost (``connection_lost``,
whatever the cause). Where ``send`` is not uvicorn's httptools cycle on that protocol,
:func:`watch_connection` returns None and the caller watches ``receive()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._direct import cycle_of
from ._http_guard import GuardedHttpToolsProtocol

__all__ = ["ConnectionWatch", "watch_connection"]


class ConnectionWatch:
    """Calls ``on_disconnect()`` once when the connection is lost, until :meth:`close`.

    The interface of ``stream._disconnect.DisconnectWatch``: :attr:`disconnected` is true
    once the connection is lost, and already at construction when it was lost before
    (then ``on_disconnect`` is not called: the caller is running and checks);
    :attr:`error` is always None (a lost connection is not an error of the app's).
    """

    __slots__ = ("_on_disconnect", "_protocol", "disconnected")

    error: BaseException | None = None

    def __init__(
        self, protocol: GuardedHttpToolsProtocol, gone: bool, on_disconnect: Callable[[], object]
    ) -> None:
        self._protocol = protocol
        self._on_disconnect = on_disconnect
        self.disconnected = gone
        # The protocol calls the watch itself (``__call__``): no bound method of it is
        # kept, which would be a reference cycle, and would keep the connection's
        # objects alive after the stream until the garbage collector found it.
        if not gone:
            protocol.on_lost = self

    def gone(self) -> bool:
        """:attr:`disconnected`, read now."""
        return self.disconnected

    def close(self) -> None:
        """Stop watching (the protocol forgets the watch if it still holds it)."""
        if self._protocol.on_lost is self:
            self._protocol.on_lost = None

    def __call__(self) -> None:
        """The protocol's call when the connection is lost."""
        self.disconnected = True
        self._on_disconnect()


def watch_connection(
    send: Callable[[Any], Awaitable[None]], on_disconnect: Callable[[], object]
) -> ConnectionWatch | None:
    """A :class:`ConnectionWatch` of the connection of the response ``send`` belongs to,
    or None where it cannot be had (see the module doc). One response per connection is
    sent at a time (uvicorn starts a pipelined request once the previous one is
    complete), so one watch per connection at a time; a new one replaces an old one."""
    cycle = cycle_of(send)
    if cycle is None:
        return None
    protocol = cycle.transport.get_protocol()
    if not isinstance(protocol, GuardedHttpToolsProtocol):
        return None
    # cycle.disconnected: as uvicorn's receive() would answer; protocol.lost: the same
    # when uvicorn marked a later (pipelined) cycle instead of this one.
    gone = cycle.disconnected or protocol.lost
    return ConnectionWatch(protocol, gone, on_disconnect)
