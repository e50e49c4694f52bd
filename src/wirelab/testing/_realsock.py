"""The real socket class, captured once, before any test double can patch ``socket.socket``.

``install_fault_socket()`` imports this module before it patches anything, and every test
server makes its sockets with :data:`RealSocket`, so a server keeps real sockets even when
its module is first imported, or the server started, inside an installed block.
"""

from __future__ import annotations

import socket
from typing import Final

__all__ = ["RealSocket", "create_server", "real_socketpair"]

RealSocket: Final[type[socket.socket]] = socket.socket
real_socketpair: Final = socket.socketpair


def create_server(address: tuple[str, int], family: int, backlog: int) -> socket.socket:
    """``socket.create_server`` with a real socket (SO_REUSEADDR, bound, listening)."""
    sock = RealSocket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
