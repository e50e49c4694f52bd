"""`wirelab serve --only stream`: the Stream service alone, and --workers N without Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _workers_ready import wait_for_two_workers
from wirelab import UsageError
from wirelab.server import ServerConfig, create_app

_SERVE = (sys.executable, "-m", "wirelab", "serve", "--port", "0")
# Paced streams that stay open for seconds: a process holding one reports it on /healthz.
_HELD = b"GET /v1/stream?count=2&min_interval=30&max_interval=30 HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.asyncio
async def test_stream_only_app_serves_streams_and_nothing_else(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", only="stream")
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        r = await client.get("/v1/stream", params={"count": 2, "min_interval": 0,
                                                   "max_interval": 0, "seed": 3})  # fmt: skip
        assert r.status_code == 200 and r.headers["wirelab-seed"] == "3"
        bad = await client.get("/v1/stream", params={"count": -1})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "count"]
        assert (await client.get("/v1/relay/files")).status_code == 404
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert "stream server is up" in (await client.get("/")).text
    assert not (tmp_path / "data").exists()  # no database, no blob store, no lock file


def test_only_names_a_capability() -> None:
    with pytest.raises(UsageError, match="'relay' cannot be served alone"):
        ServerConfig(only="relay")


def test_workers_without_coordination_point_to_only_stream(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_SERVE, "--workers", "2", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--only stream" in result.stderr


def _open_streams(port: int, n: int) -> list[socket.socket]:
    held = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(_HELD)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        held.append(sock)
    return held


@pytest.mark.slow
def test_two_stream_only_workers_serve_streams_without_coordination(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "WIRELAB_COORDINATION_URL"}
    with log.open("wb") as err:
        parent = subprocess.Popen(
            [*_SERVE, "--workers", "2", "--data-dir", str(data_dir)],
            env={**env, "WIRELAB_ONLY": "stream"},
            stderr=err,
        )
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 90
        pids, port = wait_for_two_workers(parent, log, 90)
        # The kernel spreads connections over both sockets: 24 streams all landing on one
        # process has a chance of 2**-23.
        held = _open_streams(port, 24)
        busy: set[int] = set()
        while busy != pids:  # each process reports the streams it serves
            assert time.monotonic() < deadline, busy
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()
            if health["streams_active"] > 0:
                busy.add(health["pid"])
        assert not data_dir.exists()
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0, log.read_text()
        # Streams in progress were ended with an X frame at shutdown, not cut.
        tail = b"".join(_read_all(s) for s in held)
        assert tail.count(b'"error":"shutdown"') == len(held)
    finally:
        for sock in held:
            sock.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
