"""`wirelab serve --workers N`: several processes on one port, and who may share a folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from _workers_ready import wait_for_two_workers
from wirelab.server._lock import DataDirLock, DataDirLockedError

_WIRELAB = (sys.executable, "-m", "wirelab", "serve", "--port", "0")


@pytest.fixture
def coordination(redis_url: str, redis_prefix: str) -> Iterator[str]:
    yield f"{redis_url}?prefix={redis_prefix}"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{redis_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_WIRELAB, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.slow
def test_two_workers_answer_on_one_port_from_two_pids_and_are_replaced(
    tmp_path: Path, coordination: str
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        parent = subprocess.Popen(
            [*_WIRELAB, "--workers", "2", "--data-dir", str(data_dir)],
            env={**os.environ, "WIRELAB_COORDINATION_URL": coordination},
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        pids, port = wait_for_two_workers(parent, log, 60)
        assert pids <= _children(parent.pid)  # (beside multiprocessing's resource tracker)
        url = f"http://127.0.0.1:{port}"
        seen: set[int] = set()
        while seen != pids:  # each new connection lands on one of the two sockets
            assert time.monotonic() < deadline, seen
            seen.add(httpx.get(url + "/healthz").json()["pid"])

        # A child that dies is replaced; the port keeps answering.
        os.kill(min(pids), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not seen - pids:
            assert time.monotonic() < deadline, seen
            with contextlib.suppress(httpx.TransportError):
                seen.add(httpx.get(url + "/healthz").json()["pid"])
        assert "exited with status -9" in log.read_text()
        pids = _children(parent.pid)

        # Another set of workers (another data folder) does not get a share of the port.
        intruder = subprocess.run(
            [*_WIRELAB[:-1], str(port), "--workers", "2", "--data-dir", str(tmp_path / "other")],
            env={**os.environ, "WIRELAB_COORDINATION_URL": coordination},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert intruder.returncode == 2, intruder.stderr
        assert f"cannot bind 127.0.0.1:{port}" in intruder.stderr

        # An uncoordinated server on the same folder is refused, naming the coordination.
        alone = _run("--data-dir", str(data_dir))
        assert alone.returncode == 1
        assert "servers coordinated through redis://127.0.0.1:6379/0" in alone.stderr
        assert len(alone.stderr.strip().splitlines()) == 1

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
        deadline = time.monotonic() + 30  # every child (and the resource tracker) ends
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            assert time.monotonic() < deadline, pids
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


def test_several_workers_need_a_shared_coordination(tmp_path: Path) -> None:
    result = _run("--workers", "2", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "WIRELAB_COORDINATION_URL" in lines[0]


def test_an_unreachable_coordination_is_one_line(tmp_path: Path) -> None:
    result = _run(
        "--workers", "2", "--data-dir", str(tmp_path / "data"),
        WIRELAB_COORDINATION_URL="redis://127.0.0.1:1/0",
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach the coordination service at redis://127.0.0.1:1/0" in lines[0]


@pytest.mark.slow
def test_a_worker_that_fails_to_start_fails_the_whole(tmp_path: Path, coordination: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run(
        "--workers", "2", "--data-dir", str(tmp_path / "data"),
        "--database-url", f"sqlite:///{blocker}/wirelab.db",
        WIRELAB_COORDINATION_URL=coordination,
    )  # fmt: skip
    assert result.returncode == 1
    assert "a server process failed to start" in result.stderr


def test_the_folder_lock_is_shared_by_one_coordination_only(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path, "redis://h:6379/0 prefix a:")
    second = DataDirLock(tmp_path, "redis://h:6379/0 prefix a:")
    with first, second:  # the same coordination: shared
        with pytest.raises(DataDirLockedError, match="coordinated through redis://h:6379/0"):
            DataDirLock(tmp_path).acquire()  # an uncoordinated server
        with pytest.raises(DataDirLockedError, match=r"give every server .* the same"):
            DataDirLock(tmp_path, "redis://h:6379/0 prefix b:").acquire()
    lone = DataDirLock(tmp_path)  # released: a lone server may have it again
    with lone, pytest.raises(DataDirLockedError, match="without coordination"):
        DataDirLock(tmp_path, "redis://h:6379/0 prefix a:").acquire()
