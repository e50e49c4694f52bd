"""A real ``wirelab serve`` child process that tests can SIGKILL and start again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from wirelab.db import connect, sqlite_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def add_users(data_dir: Path, *names: str) -> dict[str, str]:
    """Create users in the server's store (before it starts); return their tokens."""

    async def add() -> dict[str, str]:
        async with await connect(sqlite_url(data_dir / "wirelab.db")) as db:
            return {n: (await db.users.add_user(n))[1] for n in names}

    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(add())


class ServeProcess:
    """``wirelab serve`` on 127.0.0.1 with ``data_dir``; :meth:`restart` keeps the port.

    With ``log``, the server's log (stderr) goes to that file (appended to on restarts).
    """

    def __init__(self, data_dir: Path, *extra: str, log: Path | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers ``/healthz``."""
        with contextlib.ExitStack() as files:
            log = None if self.log is None else files.enter_context(self.log.open("ab"))
            self.proc = self._popen(log)
        self.wait_ready()

    def _popen(self, log: IO[bytes] | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wirelab",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if log is None else log,
        )

    def wait_ready(self) -> None:
        """Wait until the server answers ``/healthz`` (kill it if it does not start)."""
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("wirelab serve did not start")

    def kill(self) -> None:
        """SIGKILL the server (no clean-up of any kind) and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        """SIGKILL, then start again on the same port and data folder."""
        self.kill()
        self.start()
