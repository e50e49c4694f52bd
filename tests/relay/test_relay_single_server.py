"""One server per data folder: a second `wirelab serve` on the same folder is refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ._serve_process import ServeProcess, add_users, free_port

_WIRELAB = (sys.executable, "-m", "wirelab")


def _serve_again(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """A second `wirelab serve` on ``data_dir``; it must exit on its own."""
    return subprocess.run(
        [*_WIRELAB, "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _send(url: str, token: str, to: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/relay/files",
        params={"to": to, "name": "a.txt"},
        headers={"Authorization": f"Bearer {token}", "Wirelab-Sha256": _sha(body)},
        content=body,
    )


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[ServeProcess, dict[str, str]]]:
    """A real server on ``tmp_path/data`` with users alice and bob, and their tokens."""
    tokens = add_users(tmp_path / "data", "alice", "bob")
    server = ServeProcess(tmp_path / "data")
    try:
        yield server, tokens
    finally:
        server.kill()


def test_second_server_on_the_same_folder_is_refused(
    running: tuple[ServeProcess, dict[str, str]],
) -> None:
    first, tokens = running
    data_dir = first.data_dir
    assert first.proc is not None
    second = _serve_again(data_dir)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert str(data_dir) in lines[0]
    assert f"process {first.proc.pid}" in lines[0]
    assert "Traceback" not in second.stderr

    # The first one keeps serving, its uploads untouched by the attempt.
    assert _send(first.url, tokens["alice"], "bob", b"hello").status_code == 201
    inbox = httpx.get(
        first.url + "/v1/relay/inbox", headers={"Authorization": f"Bearer {tokens['bob']}"}
    )
    assert [f["sha256"] for f in inbox.json()["files"]] == [_sha(b"hello")]


def test_users_commands_work_while_the_server_runs(
    running: tuple[ServeProcess, dict[str, str]],
) -> None:
    server, _ = running
    data_dir = server.data_dir
    added = subprocess.run(
        [*_WIRELAB, "users", "add", "carol", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = json.loads(added.stdout)["token"]
    # The running server sees the new user at once: same database, no lock conflict.
    assert _send(server.url, token, "alice", b"hi").status_code == 201


def test_a_new_server_starts_once_the_first_has_exited(
    running: tuple[ServeProcess, dict[str, str]],
) -> None:
    server, tokens = running
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGTERM)  # a clean exit releases the lock
    assert server.proc.wait(30) == 0
    server.start()
    assert _send(server.url, tokens["alice"], "bob", b"one").status_code == 201
    server.restart()  # so does SIGKILL: the kernel drops the lock with the process
    assert _send(server.url, tokens["alice"], "bob", b"two").status_code == 201
    assert _serve_again(server.data_dir).returncode == 1  # and the new one holds it
