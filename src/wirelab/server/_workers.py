"""Several server processes on one port: ``SO_REUSEPORT`` and a small supervisor.

The parent binds the address once (to validate it and to pick the port when 0 is asked),
never listens on it (a listening socket of the parent would take its share of the
connections and never accept them) and keeps it bound so that the port stays reserved.
Each child binds its own socket to the same address with ``SO_REUSEPORT`` and listens:
the kernel spreads new connections over the children's sockets.

The parent forwards SIGTERM and SIGINT to the children (which are in their own process
group, so a terminal's Ctrl-C reaches them once, through the parent) and returns when all
have exited; a child that dies with its parent is asked to by ``PR_SET_PDEATHSIG``. It
reports failure (a non-zero status) when a child fails to start, and then stops the
others, or when a child exits with a non-zero status. A child that exits after all
started, while the parent is not stopping, is replaced (at most N times a minute).

Generic: the child's work is any picklable ``main(sock, ready, *args)`` that serves on
``sock`` (bound, not listening) and calls ``ready()`` once it accepts connections.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

from .._exceptions import UsageError

__all__ = ["WorkerMain", "reuseport_socket", "run_workers"]

_log = logging.getLogger("wirelab.server")

WorkerMain = Callable[..., None]
_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG: Final = 1
_RESTART_WINDOW_S: Final = 60.0


def reuseport_socket(host: str, port: int, *, alone: bool = False) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT``, not listening yet.

    ``alone``: fail if any socket is bound to the port already, even one that would share
    it (another set of server processes, perhaps of another data folder, would otherwise
    silently get a share of the connections). :class:`~wirelab.UsageError` (one line)
    when the address cannot be bound.
    """
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - not Linux/BSD
        raise UsageError("several server processes need SO_REUSEPORT, missing on this system")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if alone and port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise UsageError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux; else no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child(
    main: WorkerMain, host: str, port: int, ready: Connection, args: tuple[Any, ...]
) -> None:
    os.setpgid(0, 0)  # the parent alone gets a terminal's Ctrl-C, and forwards it once
    _die_with_parent()
    sock = reuseport_socket(host, port)

    def announce() -> None:
        with contextlib.suppress(OSError):
            ready.send(os.getpid())
            ready.close()

    main(sock, announce, *args)


class _Supervisor:
    """The parent's side: start, watch and stop the children."""

    def __init__(self, count: int, main: WorkerMain, args: tuple[Any, ...], host: str) -> None:
        self.count, self.main, self.args, self.host = count, main, args, host
        self.children: list[BaseProcess] = []
        self.stopping = False

    def start(self, port: int) -> list[Connection]:
        """Start the children; the pipes on which each announces it is ready."""
        return [self._spawn(port) for _ in range(self.count)]

    def _spawn(self, port: int) -> Connection:
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=_child,
            args=(self.main, self.host, port, send, self.args),
            name="wirelab-worker",
        )
        child.start()
        send.close()
        self.children.append(child)
        return receive

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for child in self.children:
            if child.pid is not None and child.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    def wait_ready(self, pipes: list[Connection], timeout: float) -> list[int] | None:
        """The children's pids once all accept connections; ``None`` if one exited (or
        the time ran out) first."""
        pids: list[int] = []
        waiting: list[Any] = [*pipes, *(c.sentinel for c in self.children)]
        deadline = time.monotonic() + timeout
        while len(pids) < self.count and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for ready in wait(waiting, left):
                if isinstance(ready, Connection):
                    try:
                        pids.append(ready.recv())
                    except EOFError:  # the child exited before it was ready
                        return None
                    waiting.remove(ready)
                else:
                    return None
        return pids

    def wait_all(self, port: int | None = None) -> int:
        """Wait for every child to exit; 0 if all exited with status 0 (a replaced one
        aside). With ``port``, a child that exits while not stopping is replaced (at most
        ``count`` times a minute; past that every child is stopped: status 1)."""
        status = 0
        restarts: list[float] = []
        while self.children:
            for sentinel in wait([c.sentinel for c in self.children]):
                child = next(c for c in self.children if c.sentinel == sentinel)
                child.join()
                self.children.remove(child)
                if self.stopping or port is None:
                    status = status or int(child.exitcode != 0)
                    continue
                _log.error("server process %s exited with status %s", child.pid, child.exitcode)
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < _RESTART_WINDOW_S] + [now]
                if len(restarts) > self.count:
                    _log.error("server processes keep exiting: stopping")
                    status = 1
                    self.forward(signal.SIGTERM, None)
                else:
                    self._spawn(port).close()  # it serves as soon as it is up
        return status


def run_workers(
    count: int,
    main: WorkerMain,
    *args: Any,
    host: str,
    port: int,
    start_timeout: float = 120.0,
    on_ready: Callable[[int, list[int]], None] | None = None,
) -> int:
    """Run ``count`` processes of ``main(sock, ready, *args)`` on one ``host``/``port``
    until they exit (SIGTERM/SIGINT to this process stops them); the exit status.

    ``on_ready(port, pids)`` is called once every child accepts connections.
    """
    holder = reuseport_socket(host, port, alone=True)
    supervisor = _Supervisor(count, main, args, host)
    previous = {s: signal.signal(s, supervisor.forward) for s in _STOP_SIGNALS}
    try:
        actual = holder.getsockname()[1]
        pids = supervisor.wait_ready(supervisor.start(actual), start_timeout)
        if pids is None and not supervisor.stopping:
            print("wirelab serve: a server process failed to start", file=sys.stderr)
            supervisor.forward(signal.SIGTERM, None)
            supervisor.wait_all()
            return 1
        if pids is not None and on_ready is not None:
            on_ready(actual, pids)
        return supervisor.wait_all(actual)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        holder.close()
