"""The classic testing socket, as a thin layer over :class:`FaultSocket`.

Code written for the classic command-list servers' ``TestingSocket`` keeps working: a real
socket whose ``_data`` dict holds ``data_out`` (everything given to ``send``/``sendall``,
the call that raised included, as before), ``send_calls`` and ``sendall_calls``, with
``breakOn(trigger, exception)``.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any

from .._exceptions import UsageError
from ._fault_socket import FaultSocket

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["TestingSocket"]

_Exc = BaseException | type[BaseException]


class TestingSocket(FaultSocket):
    """A :class:`FaultSocket` with the classic testing socket's interface.

    ``TestingSocket(sock=connected)`` takes over an existing socket (its descriptor and
    timeout; ``sock`` is detached). ``host`` and ``port`` are kept as attributes.
    ``breakOn(trigger, exc)``: once ``trigger`` (``str``, encoded as UTF-8, or ``bytes``)
    has appeared in the outgoing data, the send that completes it and every later one
    raise ``exc`` (an exception or its class). A new ``breakOn`` replaces the previous one.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self,
        family: socket.AddressFamily | int = socket.AF_INET,
        type: socket.SocketKind | int = socket.SOCK_STREAM,
        sock: socket.socket | None = None,
        host: str | None = None,
        port: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if sock is not None:
            super().__init__(sock.family, sock.type, sock.proto, sock.fileno())
            self.settimeout(sock.gettimeout())
            sock.detach()
        else:
            super().__init__(family, type, *args, **kwargs)
        self.host = host
        self.port = port
        self._out_lock = threading.Lock()
        self._data_out = bytearray()
        self._cue: bytes | None = None
        self._throw: _Exc | None = None

    @property
    def _data(self) -> dict[str, Any]:
        """The classic record: ``data_out``, ``send_calls``, ``sendall_calls``, and the
        current ``cue``/``throw`` of :meth:`breakOn` (a fresh dict on each access)."""
        with self._out_lock:
            data_out = bytes(self._data_out)
        return {
            "sendall_calls": self.sendall_calls,
            "send_calls": self.send_calls,
            "data_out": data_out,
            "cue": self._cue,
            "throw": self._throw,
        }

    def breakOn(self, cue: str | bytes, exc: _Exc) -> None:
        """Raise ``exc`` from the send that completes ``cue`` and from every later one."""
        if isinstance(cue, str):
            cue = cue.encode()
        if not isinstance(cue, bytes) or not cue:
            raise UsageError(f"breakOn(): cue must be non-empty str or bytes, got {cue!r}")
        self.clear_breaks()
        self.break_on(cue, exc, once=False)
        self._cue, self._throw = cue, exc

    def _note_out(self, data: ReadableBuffer) -> None:
        with self._out_lock:
            self._data_out += bytes(data)

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        self._note_out(data)
        return super().send(data, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        self._note_out(data)
        super().sendall(data, flags)
