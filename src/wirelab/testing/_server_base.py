"""What the thread-backed and the asyncio scripted servers share: arguments, the listening
socket, which script a connection gets, transcripts and error reporting. No serving here."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Literal, TypeAlias

from .._exceptions import UsageError
from ._realsock import RealSocket
from ._runner import Conn, OpGen, ScriptError, run_connection
from ._steps import DEFAULT_TIMEOUT, Close, Reset, Step, StopReading, validate_script
from ._tls import SERVER_HOSTNAME, BadCert, TLSSetup, tls_setup
from ._transcript import Transcript

if TYPE_CHECKING:
    import trustme

__all__ = ["SMALL_RCVBUF", "ServerCore", "Then"]

Then: TypeAlias = Literal["repeat-last", "refuse", "reset", "close", "error"]
"""What connections beyond the scripts get (see :class:`ScriptedServer`)."""

_THENS: Final = ("repeat-last", "refuse", "reset", "close", "error")

SMALL_RCVBUF: Final = 4096
"""``SO_RCVBUF`` of a listening socket whose scripts contain :class:`StopReading`."""


Script: TypeAlias = Sequence[Step]


class ServerCore:
    """Arguments, bookkeeping and reporting of a scripted server (see ScriptedServer)."""

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
        if (script is None) == (scripts is None):
            raise UsageError("give either a script or scripts=[...], not both or neither")
        plans: tuple[tuple[Step, ...], ...]
        if script is not None:
            plans = (validate_script(script),)
            then = then or "repeat-last"
        else:
            assert scripts is not None
            if isinstance(scripts, Step) or not scripts:
                raise UsageError("scripts must be a non-empty list of scripts")
            plans = tuple(validate_script(s, f"script #{n}") for n, s in enumerate(scripts, 1))
            then = then or "error"
        if one_shot:
            if len(plans) != 1 or then not in ("repeat-last", "refuse"):
                raise UsageError("one_shot=True takes a single script and no then=")
            then = "refuse"
        if then not in _THENS:
            raise UsageError(f"then must be one of {', '.join(_THENS)}; got {then!r}")
        self.scripts: Final = plans
        self.then: Final[Then] = then
        self._host = host
        self._port_arg = port
        self._unix = unix
        self._tls: Final[TLSSetup | None] = tls_setup(tls)
        if rcvbuf is None and any(isinstance(s, StopReading) for p in plans for s in p):
            rcvbuf = SMALL_RCVBUF
        self._rcvbuf = rcvbuf
        self._allow_disconnect = allow_disconnect
        self._handshake_timeout = handshake_timeout
        self._backlog = backlog
        self._address: tuple[str, int] | str | None = None
        self._tempdir: str | None = None
        self._lock = threading.Condition()
        self._transcripts: list[Transcript] = []
        self._running: dict[int, Transcript] = {}
        self._errors: list[BaseException] = []
        self._reported = 0
        self._accepted = 0
        self._active = 0
        self._init_executor()

    def _init_executor(self) -> None:
        """The executor's own state, set up last in ``__init__`` (subclasses override)."""

    # -- public, read-only -------------------------------------------------------

    def __repr__(self) -> str:
        where = "not started" if self._address is None else self._where()
        return f"<{type(self).__name__} {where}>"

    def _where(self) -> str:
        if isinstance(self._address, str):
            return f"unix:{self._address}"
        if self._address is None:
            return "?"
        host, port = self._address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _bound(self) -> tuple[str, int] | str:
        if self._address is None:
            raise UsageError(f"{self!r}: the address is known once the server has started")
        return self._address

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to connect to; a :class:`~wirelab.UsageError` for a Unix socket
        server (use :attr:`path`)."""
        address = self._bound()
        if isinstance(address, str):
            raise UsageError(f"{self!r} listens on a Unix socket: use .path")
        return address

    @property
    def host(self) -> str:
        """The listening IP address (``127.0.0.1`` by default)."""
        return self.address[0]

    @property
    def port(self) -> int:
        """The listening port (the real one when 0 was asked for)."""
        return self.address[1]

    @property
    def path(self) -> str | None:
        """The Unix socket path, or ``None`` for a TCP server."""
        address = self._bound()
        return address if isinstance(address, str) else None

    @property
    def transcripts(self) -> list[Transcript]:
        """One transcript per accepted connection, in accept order (a copy of the list)."""
        with self._lock:
            return list(self._transcripts)

    @property
    def errors(self) -> list[BaseException]:
        """Every error recorded so far (reported or not), in order."""
        with self._lock:
            return list(self._errors)

    @property
    def accepted(self) -> int:
        """How many connections have been accepted so far."""
        with self._lock:
            return self._accepted

    @property
    def tls(self) -> TLSSetup | None:
        """The TLS setup (``None`` for plain TCP)."""
        return self._tls

    @property
    def ca(self) -> trustme.CA:
        """The throwaway ``trustme.CA`` that clients should trust (TLS servers only)."""
        if self._tls is None or self._tls.ca is None:
            raise UsageError(f"{self!r} has no throwaway CA (tls= not True or a BadCert)")
        return self._tls.ca

    server_hostname: ClassVar[str] = SERVER_HOSTNAME
    """The name to verify the certificate against (``localhost``; the IPs work too)."""

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client ``ssl.SSLContext`` that trusts only the server's CA."""
        if self._tls is None:
            raise UsageError(f"{self!r} does not speak TLS (pass tls=True)")
        return self._tls.client_ssl_context()

    def check(self) -> None:
        """Re-raise the first server error not raised yet (each error is raised once).

        Usually a :class:`ScriptError`; errors after it are attached as notes.
        """
        with self._lock:
            fresh = self._errors[self._reported :]
            self._reported = len(self._errors)
        if fresh:
            first = fresh[0]
            for other in fresh[1:]:
                first.add_note(f"the server also failed: {type(other).__name__}: {other}")
            raise first

    # -- for the executors -------------------------------------------------------

    def _open_listener(self) -> socket.socket:
        if self._unix:
            return self._open_unix()
        info = socket.getaddrinfo(
            self._host, self._port_arg, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, sockaddr = info[0]
        listener = RealSocket(family, kind, proto)
        try:
            if os.name != "nt":
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._prepare(listener)
            listener.bind(sockaddr)
            listener.listen(self._backlog)
            host, port = listener.getsockname()[:2]
        except BaseException:
            listener.close()
            raise
        self._address = (host, port)
        return listener

    def _open_unix(self) -> socket.socket:
        unix = self._unix
        if isinstance(unix, bool):
            self._tempdir = tempfile.mkdtemp(prefix="wirelab-")
            path = os.path.join(self._tempdir, "server.sock")
        else:
            path = os.fspath(unix)
        listener = RealSocket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._prepare(listener)
            listener.bind(path)
            self._address = path
            listener.listen(self._backlog)
        except BaseException:
            listener.close()
            self._remove_unix_path()
            raise
        return listener

    def _prepare(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        if self._rcvbuf is not None:
            # Before listen(): the TCP window scale is fixed during the handshake.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)

    def _remove_unix_path(self) -> None:
        """Remove the socket file this server bound (and its temporary directory)."""
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
        elif isinstance(self._address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._address)

    def _accept_more(self) -> bool:
        """Whether the listener stays open after the connections accepted so far."""
        with self._lock:
            return not (self.then == "refuse" and self._accepted >= len(self.scripts))

    def _begin(self, peer: object) -> tuple[int, Conn, OpGen]:
        """Register an accepted connection; return its number, state and script runner."""
        with self._lock:
            self._accepted += 1
            self._active += 1
            number = self._accepted
            transcript = Transcript(name=f"connection #{number} from {peer or 'unix peer'}")
            self._transcripts.append(transcript)
            self._running[number] = transcript
        transcript.add("event", note=f"accepted by {self!r}")
        tls = self._tls
        conn = Conn(transcript, tls=tls.server_context if tls else None)
        index = number - 1
        script: tuple[Step, ...]
        if index < len(self.scripts) or self.then == "repeat-last":
            script = self.scripts[min(index, len(self.scripts) - 1)]
        else:
            script = (Close(),) if self.then == "close" else (Reset(),)
            conn.note(f"beyond the {len(self.scripts)} scripts: then={self.then!r}")
            if self.then == "error":
                self._fail(
                    number,
                    conn,
                    script,
                    f"unexpected connection #{number}: the server has "
                    f"{len(self.scripts)} script(s) and then='error' (connection reset)",
                    None,
                )

        def fail(reason: str, exc: BaseException) -> None:
            self._fail(number, conn, script, reason, exc)

        runner = run_connection(
            conn,
            script,
            handshake_timeout=self._handshake_timeout,
            bad_tls=bool(tls and tls.bad),
            allow_disconnect=self._allow_disconnect,
            fail=fail,
        )
        return number, conn, runner

    def _fail(
        self,
        number: int,
        conn: Conn,
        script: tuple[Step, ...],
        reason: str,
        exc: BaseException | None,
    ) -> None:
        index = conn.step_index
        step = script[index] if index is not None and index < len(script) else None
        error = ScriptError(
            reason,
            server=repr(self),
            connection=number,
            step_index=index,
            step=step,
            transcript=conn.transcript,
        )
        error.__cause__ = exc
        self._record_error(error)

    def _record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)
            self._lock.notify_all()

    def _end(self, number: int) -> None:
        with self._lock:
            self._active -= 1
            self._running.pop(number, None)
            self._lock.notify_all()

    def _join_done(self) -> bool:
        """Enough connections accepted and every accepted one finished, or an error not
        raised yet: join() can return (call with the lock)."""
        done = self._accepted >= len(self.scripts) and self._active == 0
        return done or len(self._errors) > self._reported

    def _join_failure(self, timeout: float | None) -> str:
        with self._lock:
            waiting = f"{self._accepted} of {len(self.scripts)} expected connections accepted"
            active = list(self._running.values())
        detail = "".join(f"\n{t}" for t in active)
        return (
            f"{self!r}: join() timed out after {timeout} s: {waiting}, "
            f"{len(active)} still running{detail}"
        )

    def _check_on_exit(self, exc: BaseException | None) -> None:
        """Leaving the ``with`` block (after stopping): :meth:`check`, or if the block
        raised ``exc``, add the server's error to it as a note instead."""
        if exc is None:
            self.check()
            return
        try:
            self.check()
        except BaseException as error:
            exc.add_note(f"{self!r} also failed: {type(error).__name__}: {error}")
