"""A real ``wirelab serve`` child process that tests can SIGKILL and start again."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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
    """``wirelab serve`` on 127.0.0.1 with ``data_dir``; :meth:`restart` keeps the port."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers ``/healthz``."""
        self.proc = subprocess.Popen(
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
            stderr=subprocess.DEVNULL,
        )
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
