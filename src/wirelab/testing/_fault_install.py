"""``install_fault_socket()``: :class:`FaultSocket` s in place of new TCP sockets, for a block.

How it works: the ``socket`` module's ``socket`` attribute is replaced, for the duration,
by a class whose construction goes through :func:`_make_socket` and whose ``isinstance``
checks defer to the real class.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from ._fault_socket import FaultSocket
from ._realsock import RealSocket, real_socketpair

__all__ = ["install_fault_socket"]

# The socket class and socketpair as they were when this module was imported: real
# sockets are made with them while the factory is installed.
_RealSocket: Final[type[socket.socket]] = RealSocket
_real_socketpair: Final = real_socketpair


@dataclass
class _Installation:
    configure: Callable[[FaultSocket], object] | None
    thread: int | None  # only sockets made by this thread; None: any thread
    sockets: list[FaultSocket]

    def claims(self) -> bool:
        return self.thread is None or self.thread == threading.get_ident()


_state_lock = threading.RLock()
_installed: list[_Installation] = []  # innermost last
_saved: tuple[Any, Any] | None = None  # socket.socket, socket.socketpair before the first
_pairing = threading.local()  # set while socketpair() runs in this thread

_STREAM_FLAGS: Final = getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0)


def _make_socket(family: int, kind: int, proto: int, fileno: int | None) -> socket.socket:
    """What ``socket.socket(...)`` does while installed: a FaultSocket for a new TCP
    socket made by a thread that an installation claims, a real socket otherwise."""
    real_kind = socket.SOCK_STREAM if kind == -1 else kind & ~_STREAM_FLAGS
    if (
        fileno is None  # accept(), dup(), fromfd(), socketpair() wrap existing descriptors
        and not getattr(_pairing, "active", False)
        and family in (-1, socket.AF_INET, socket.AF_INET6)
        and real_kind == socket.SOCK_STREAM
    ):
        with _state_lock:
            owner = next((i for i in reversed(_installed) if i.claims()), None)
        if owner is not None:
            sock = FaultSocket(family, kind, proto)
            try:
                if owner.configure is not None:
                    owner.configure(sock)
            except BaseException:
                sock.close()
                raise
            owner.sockets.append(sock)
            return sock
    return _RealSocket(family, kind, proto, fileno)


class _SocketFactoryMeta(type):
    # isinstance()/issubclass() against the patched socket.socket must keep working for
    # every real socket (asyncio, ssl and others check them), so they defer to the real
    # class; calling the class builds the socket through _make_socket().
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _RealSocket)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _RealSocket)

    def __call__(
        cls, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> socket.socket:
        return _make_socket(family, type, proto, fileno)


class _PatchedSocket(socket.socket, metaclass=_SocketFactoryMeta):
    """Stands in for ``socket.socket`` while installed; never instantiated itself."""

    __slots__ = ()


def _socketpair(*args: Any, **kwargs: Any) -> tuple[socket.socket, socket.socket]:
    # Event loops make their wake-up pair with socketpair(); where it is emulated with
    # TCP sockets (Windows) those must stay real, so pairing turns the factory off.
    _pairing.active = True
    try:
        return _real_socketpair(*args, **kwargs)
    finally:
        _pairing.active = False


@contextmanager
def install_fault_socket(
    configure: Callable[[FaultSocket], object] | None = None, *, all_threads: bool = False
) -> Iterator[list[FaultSocket]]:
    """Make ``socket.socket(...)`` create :class:`FaultSocket` s during the block.

    Yields the list of FaultSockets created so far (it grows as code runs); each new one
    is passed to ``configure`` first, to set its faults (if ``configure`` raises, the
    socket is closed and the error comes out of ``socket.socket()``). Only new IPv4/IPv6
    TCP sockets are replaced (listening ones too, e.g. from ``socket.create_server()``;
    the wirelab test servers keep real ones), so event loops created in the block (their
    self-pipe comes from ``socketpair()``, which is left real) and sockets wrapping an
    existing descriptor (``accept()``, ``dup()``, ``fromfd()``) are real. The original
    ``socket.socket`` is restored on exit, also when the block raises; FaultSockets made
    in the block stay what they are, and the code that made them closes them.

    How it works, and the caveats: the ``socket`` module's ``socket`` attribute is
    replaced for the duration, which reaches code that calls ``socket.socket(...)`` or
    ``socket.create_connection()`` (asyncio, http.client, httpx) but not code holding
    its own reference (``from socket import socket`` before the block). The attribute is
    process-wide, so by default only sockets created by the thread that entered the block
    are replaced (a server thread running meanwhile keeps real sockets); pass
    ``all_threads=True`` for code that connects from worker threads. Blocks may be nested
    and, in different threads, overlap; each claims the sockets of its own thread.
    ``isinstance(x, socket.socket)`` keeps working for every socket.
    """
    global _saved
    installation = _Installation(configure, None if all_threads else threading.get_ident(), [])
    with _state_lock:
        if not _installed:
            _saved = (socket.socket, socket.socketpair)
            socket.socket = _PatchedSocket  # type: ignore[misc]
            socket.socketpair = _socketpair
        _installed.append(installation)
    try:
        yield installation.sockets
    finally:
        with _state_lock:
            _installed.remove(installation)
            if not _installed and _saved is not None:
                socket.socket, socket.socketpair = _saved  # type: ignore[misc]
                _saved = None
