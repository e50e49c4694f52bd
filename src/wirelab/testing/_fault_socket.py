"""A real socket that records its traffic and fails on cue.

:class:`FaultSocket` subclasses :class:`socket.socket`, so ``select``, ``selectors`` and
asyncio (``loop.sock_*``, ``open_connection(sock=...)``) treat it as the real socket it is.
It intercepts the Python-level calls that move data:

* sending: ``send``, ``sendall``, ``sendmsg`` (asyncio 3.12+ writes with it) and
  ``sendfile`` (routed through ``send`` instead of ``os.sendfile``, so the bytes are seen);
* receiving: ``recv`` and ``recv_into`` (used by asyncio, ``makefile()`` and most clients);
* connecting: ``connect`` and ``connect_ex``.

Not intercepted: ``sendto``, ``recvfrom*``, ``recvmsg*``, and anything done on the file
descriptor directly (``os.sendfile``, ``loop.sock_sendfile``, or :mod:`ssl`, which takes the
descriptor over; asyncio's TLS goes through the transport, so there the faults and records
concern the encrypted bytes).

``install_fault_socket()`` (in ``_fault_install``) makes ``socket.socket(...)`` return
FaultSockets for a block of code, so that code which opens its own connections can be
tested too.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Self

from .._exceptions import UsageError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["FaultSocket"]

ConnectFailure = Literal["refused", "timeout"]

# The socket class as it was when this module was imported (FaultSocket derives from it).
_RealSocket: Final[type[socket.socket]] = socket.socket

# errno for exception types that have a natural one, so that a raised
# ``ConnectionResetError`` looks like the kernel's (``exc.errno == errno.ECONNRESET``).
_ERRNO_OF: Final[dict[type[BaseException], int]] = {
    BrokenPipeError: errno.EPIPE,
    ConnectionResetError: errno.ECONNRESET,
    ConnectionAbortedError: errno.ECONNABORTED,
    ConnectionRefusedError: errno.ECONNREFUSED,
}


@dataclass
class _Trigger:
    pattern: bytes
    exc: BaseException | type[BaseException]
    once: bool

    def make(self) -> BaseException:
        if isinstance(self.exc, BaseException):
            return self.exc.with_traceback(None)  # raised again: drop the old frames
        message = f"FaultSocket: trigger {self.pattern!r} in outgoing data"
        code = next((c for t, c in _ERRNO_OF.items() if issubclass(self.exc, t)), None)
        return self.exc(code, message) if code is not None else self.exc(message)


class FaultSocket(socket.socket):
    """A :class:`socket.socket` that records what it sends and receives and injects faults.

    Records (all thread-safe to read): ``sent`` and ``received`` (every byte that went
    out / was handed to the caller), ``send_calls`` (``send()`` and ``sendmsg()``: single,
    possibly partial sends), ``sendall_calls`` and ``connect_calls``. Calls that raise an
    injected fault are counted too.

    Faults, set with the methods below (each returns the socket, for chaining), may be
    set before or after connecting. Create it like a socket: ``FaultSocket()`` is an IPv4
    TCP socket.
    """

    def __init__(
        self,
        family: socket.AddressFamily | int = -1,
        type: socket.SocketKind | int = -1,
        proto: int = -1,
        fileno: int | None = None,
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self._lock = threading.Lock()
        self._sent = bytearray()
        self._received = bytearray()
        self.send_calls = 0
        self.sendall_calls = 0
        self.connect_calls = 0
        self._triggers: list[_Trigger] = []
        self._broken: _Trigger | None = None
        self._max_read: int | None = None
        self._eof_at: int | None = None
        self._reset_at: int | None = None
        self._connect_failure: ConnectFailure | None = None

    @property
    def sent(self) -> bytes:
        """Every byte the socket sent, in order (not the data of calls that raised)."""
        with self._lock:
            return bytes(self._sent)

    @property
    def received(self) -> bytes:
        """Every byte the socket handed to its callers, in order."""
        with self._lock:
            return bytes(self._received)

    # -- configuration ----------------------------------------------------------------

    def break_on(
        self, trigger: bytes, exc: BaseException | type[BaseException], *, once: bool = True
    ) -> Self:
        """Raise ``exc`` from the send call whose data completes ``trigger``.

        The trigger is looked for in what was already sent followed by the new data, so a
        trigger split across calls is found in the call that sends its last byte. That
        call raises before anything of its data is sent (none of it appears in ``sent``).
        With ``once=True`` the trigger is then disarmed, so a retry of the same data goes
        through; with ``once=False`` the socket stays broken: every later send, sendall
        or sendmsg raises too, as on a real broken connection.

        ``exc`` may be an instance (raised as is) or a class, instantiated with a message
        (and the matching errno for ``BrokenPipeError``, ``ConnectionResetError``,
        ``ConnectionAbortedError`` and ``ConnectionRefusedError``).
        """
        if not isinstance(trigger, bytes) or not trigger:
            raise UsageError(f"break_on(): trigger must be non-empty bytes, got {trigger!r}")
        if not isinstance(exc, BaseException) and not (
            isinstance(exc, type) and issubclass(exc, BaseException)
        ):
            raise UsageError(f"break_on(): exc must be an exception or its class, got {exc!r}")
        with self._lock:
            self._triggers.append(_Trigger(trigger, exc, once))
        return self

    def clear_breaks(self) -> Self:
        """Disarm every :meth:`break_on` trigger and mend a socket they broke."""
        with self._lock:
            self._triggers.clear()
            self._broken = None
        return self

    def short_reads(self, max_bytes: int) -> Self:
        """Make every receive return at most ``max_bytes`` bytes (as a slow network might):
        a caller that assumes one recv returns a whole message will break."""
        if max_bytes < 1:
            raise UsageError(f"short_reads(): max_bytes must be >= 1, got {max_bytes}")
        with self._lock:
            self._max_read = max_bytes
        return self

    def eof_after(self, n_bytes: int) -> Self:
        """Deliver EOF (``recv`` returns ``b""``) once ``n_bytes`` bytes were received in
        total: reads are cut so that exactly ``n_bytes`` get through. See :meth:`reset_after`
        for how event loops notice."""
        with self._lock:
            self._eof_at = self._threshold("eof_after", n_bytes)
        self._shut_read_if_due()
        return self

    def reset_after(self, n_bytes: int) -> Self:
        """Raise ``ConnectionResetError(errno.ECONNRESET, ...)`` from every receive once
        ``n_bytes`` bytes were received in total (exactly ``n_bytes`` get through). Sends
        are not affected.

        Event loops only call ``recv`` on a readable socket, so when the count is reached
        the read side of the real socket is shut down, which makes it readable: the next
        read sees the injected fault even if the peer stays quiet. (With a count of 0,
        that happens at once if the socket is connected, or when a blocking ``connect``
        returns; a non-blocking connect finishing later is not seen, so the fault shows at
        the peer's first data.)
        """
        with self._lock:
            self._reset_at = self._threshold("reset_after", n_bytes)
        self._shut_read_if_due()
        return self

    def fail_connect(self, kind: ConnectFailure) -> Self:
        """Make every connect fail at once, without touching the network: ``"refused"``
        raises ``ConnectionRefusedError(errno.ECONNREFUSED, ...)``, ``"timeout"`` raises
        ``TimeoutError(errno.ETIMEDOUT, ...)`` (which is ``socket.timeout``), without
        waiting. ``connect_ex`` returns those errno values instead."""
        if kind not in ("refused", "timeout"):
            raise UsageError(f"fail_connect(): expected 'refused' or 'timeout', got {kind!r}")
        with self._lock:
            self._connect_failure = kind
        return self

    @staticmethod
    def _threshold(name: str, n_bytes: int) -> int:
        if n_bytes < 0:
            raise UsageError(f"{name}(): n_bytes must be >= 0, got {n_bytes}")
        return n_bytes

    # -- connecting -------------------------------------------------------------------

    def connect(self, address: Any, /) -> None:
        with self._lock:
            self.connect_calls += 1
            failure = self._connect_failure
        if failure == "refused":
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"Connection refused (injected by FaultSocket): {address}"
            )
        if failure == "timeout":
            raise TimeoutError(
                errno.ETIMEDOUT, f"Connection timed out (injected by FaultSocket): {address}"
            )
        super().connect(address)
        self._shut_read_if_due()

    def connect_ex(self, address: Any, /) -> int:
        with self._lock:
            self.connect_calls += 1
            failure = self._connect_failure
        if failure == "refused":
            return errno.ECONNREFUSED
        if failure == "timeout":
            return errno.ETIMEDOUT
        result = super().connect_ex(address)
        if result == 0:
            self._shut_read_if_due()
        return result

    # -- sending ----------------------------------------------------------------------

    def _check_send(self, data: bytes, *, sendall: bool = False) -> None:
        """Count the call; raise if the socket is broken or ``data`` completes a trigger."""
        with self._lock:
            if sendall:
                self.sendall_calls += 1
            else:
                self.send_calls += 1
            if self._broken is not None:
                raise self._broken.make()
            for trigger in self._triggers:
                # The tail of what was sent, one byte short of the pattern, cannot hold a
                # whole (older) match, so a match here always ends in the new data.
                tail = bytes(self._sent[max(0, len(self._sent) - len(trigger.pattern) + 1) :])
                if trigger.pattern in tail + data:
                    if trigger.once:
                        self._triggers.remove(trigger)
                    else:
                        self._broken = trigger
                    raise trigger.make()

    def _record_sent(self, data: bytes) -> None:
        with self._lock:
            self._sent += data

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        payload = bytes(data)
        self._check_send(payload)
        n = super().send(payload, flags)
        self._record_sent(payload[:n])
        return n

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        """Send everything; if the real sendall fails part way, nothing is recorded, as
        the kernel does not say how much went out."""
        payload = bytes(data)
        self._check_send(payload, sendall=True)
        super().sendall(payload, flags)
        self._record_sent(payload)

    if sys.platform != "win32":

        def sendmsg(
            self,
            buffers: Iterable[ReadableBuffer],
            ancdata: Iterable[tuple[int, int, ReadableBuffer]] = (),
            flags: int = 0,
            address: Any = None,
            /,
        ) -> int:
            payload = b"".join(bytes(b) for b in buffers)
            self._check_send(payload)
            if address is None:
                n = super().sendmsg([payload], ancdata, flags)
            else:
                n = super().sendmsg([payload], ancdata, flags, address)
            self._record_sent(payload[:n])
            return n

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        # socket.sendfile() prefers os.sendfile() on the descriptor, which would bypass
        # send(); CPython's own fallback reads the file and calls self.send().
        result: int = self._sendfile_use_send(file, offset, count)  # type: ignore[attr-defined]
        return result

    # -- receiving --------------------------------------------------------------------

    def _allowance(self, wanted: int) -> int:
        """How many bytes this receive may return (0: deliver EOF now); raise the reset."""
        with self._lock:
            got = len(self._received)
            if self._reset_at is not None and got >= self._reset_at:
                raise ConnectionResetError(
                    errno.ECONNRESET,
                    f"Connection reset by peer (injected by FaultSocket after {got} bytes)",
                )
            allowed = wanted if self._max_read is None else min(wanted, self._max_read)
            for at in (self._eof_at, self._reset_at):
                if at is not None:
                    allowed = min(allowed, at - got)
            return max(allowed, 0)

    def _record_received(self, data: bytes) -> None:
        with self._lock:
            self._received += data
        self._shut_read_if_due()

    def _shut_read_if_due(self) -> None:
        """Once an EOF/reset threshold is reached, shut the real read side down so that
        the socket polls readable and event loops come and read the injected fault."""
        with self._lock:
            got = len(self._received)
            due = any(at is not None and got >= at for at in (self._eof_at, self._reset_at))
        if due:
            # Not connected (yet), or already shut down: nothing to wake.
            with contextlib.suppress(OSError):
                super().shutdown(socket.SHUT_RD)

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        allowed = self._allowance(bufsize) if bufsize > 0 else 0
        if allowed == 0 and bufsize > 0:
            return b""
        data = super().recv(allowed, flags)
        self._record_received(data)
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        wanted = nbytes or view.nbytes
        allowed = self._allowance(wanted) if wanted > 0 else 0
        if allowed == 0:
            return 0
        n = super().recv_into(view, allowed, flags)
        self._record_received(bytes(view[:n]))
        return n
