"""`wirelab serve` as a real process: env vars, defaults, clean shutdown on signals."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from wirelab.framing import FileEnded, StreamDecoder


@contextmanager
def serve(tmp_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `wirelab serve` on a free port; yield the process and its base URL.

    stderr is drained by a thread (so logging can never block the server on a full pipe)
    and the process is killed on exit if the test left it running.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "wirelab", "serve"],
        env={**os.environ, "WIRELAB_PORT": "0", "WIRELAB_DATA_DIR": str(tmp_path / "d"), **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        while line := lines.get(timeout=30):
            if m := re.search(r"running on (http://[\d.]+:\d+)", line, re.I):
                break
        else:
            pytest.fail("server exited before it was ready")
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        thread.join(5)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_streams_and_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with serve(tmp_path) as (proc, url):
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        decoder = StreamDecoder()
        names = []
        with httpx.stream(
            "GET",
            url + "/v1/stream",
            timeout=30,
            params={
                "count": 10_000,
                "min_size": 2,
                "max_size": 64,
                "min_interval": 0.01,
                "max_interval": 0.01,
            },
        ) as r:
            for block in r.iter_raw():
                events = decoder.feed(block)
                names += [type(e).__name__ for e in events]
                if any(isinstance(e, FileEnded) for e in events) and proc.poll() is None:
                    proc.send_signal(sig)
        decoder.close()
        assert names[-1] == "StreamAborted"
        assert proc.wait(timeout=15) == 0
        assert (tmp_path / "d").is_dir()  # --data-dir from WIRELAB_DATA_DIR


def test_options_come_from_environment(tmp_path: Path) -> None:
    with serve(tmp_path, WIRELAB_STREAM_LIMIT_COUNT="2", WIRELAB_LOG_LEVEL="info") as (proc, url):
        r = httpx.get(url + "/v1/stream", params={"count": 3, "min_size": 2, "max_size": 2})
        assert r.status_code == 422 and "<= 2 (server limit)" in r.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_bad_option_is_a_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "wirelab", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "70000" in r.stderr


def test_relay_options_and_users_share_the_data_dir(tmp_path: Path) -> None:
    import hashlib
    import json

    env = {**os.environ, "WIRELAB_DATA_DIR": str(tmp_path / "d")}
    added = subprocess.run(
        [sys.executable, "-m", "wirelab", "users", "add", "erin", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = json.loads(added.stdout)["token"]
    with serve(tmp_path, WIRELAB_RELAY_MAX_FILE_SIZE="10") as (proc, url):

        def send(data: bytes) -> httpx.Response:
            headers = {
                "Authorization": f"Bearer {token}",
                "Wirelab-Sha256": hashlib.sha256(data).hexdigest(),
            }
            params = {"to": "erin", "name": "a.txt"}
            return httpx.post(url + "/v1/relay/files", params=params, content=data,
                              headers=headers)  # fmt: skip

        assert send(b"0123456789").status_code == 201  # exactly the limit
        assert send(b"0123456789!").status_code == 413
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_bad_database_pool_size_is_a_usage_error(command: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "wirelab", command, "--jobs-url", "redis://127.0.0.1:1/0"],
        env={**os.environ, "WIRELAB_DATABASE_POOL_SIZE": "0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stderr
    assert "--database-pool-size" in r.stderr and "0 is not in the range 1<=x<=1000" in r.stderr
