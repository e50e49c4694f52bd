"""Listen backlog and open-file limit: validated, capped by the kernel with a log line, and
applied by `wirelab serve` at start."""

from __future__ import annotations

import logging
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wirelab import UsageError
from wirelab.server import ConnectionLimits
from wirelab.server._os_limits import SOMAXCONN_PATH, listen_backlog


def test_backlog_below_the_kernel_cap_is_used_as_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap = tmp_path / "somaxconn"
    cap.write_text("4096\n")
    with caplog.at_level(logging.WARNING, "wirelab.server"):
        assert listen_backlog(4096, cap) == 4096
        assert listen_backlog(10, cap) == 10
    assert not caplog.records


def test_backlog_above_the_kernel_cap_is_capped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap = tmp_path / "somaxconn"
    cap.write_text("128\n")
    with caplog.at_level(logging.WARNING, "wirelab.server"):
        assert listen_backlog(4096, cap) == 128
    assert "listen backlog 4096 (WIRELAB_BACKLOG) capped at 128 by net.core.somaxconn" in (
        caplog.text
    )


def test_backlog_without_a_readable_cap_is_used_as_is(tmp_path: Path) -> None:
    assert listen_backlog(50_000, tmp_path / "missing") == 50_000
    (tmp_path / "garbage").write_text("not a number")
    assert listen_backlog(50_000, tmp_path / "garbage") == 50_000


def test_backlog_is_validated() -> None:
    assert ConnectionLimits().backlog == 4096
    with pytest.raises(UsageError, match="backlog must be at least 1"):
        ConnectionLimits(backlog=0)


def test_bad_backlog_option_is_a_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "wirelab", "serve", "--backlog", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "--backlog" in r.stderr


def _lower_soft_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 512), hard))


@pytest.mark.skipif(not SOMAXCONN_PATH.exists(), reason="needs Linux's net.core.somaxconn")
def test_serve_raises_the_open_file_limit_and_logs_both_limits(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 512:
        pytest.skip(f"the hard open-file limit {hard} leaves nothing to raise")
    somaxconn = int(SOMAXCONN_PATH.read_text())
    console = tmp_path / "console.log"
    env = {
        **os.environ,
        "WIRELAB_PORT": "0",
        "WIRELAB_DATA_DIR": str(tmp_path / "d"),
        "WIRELAB_BACKLOG": str(somaxconn + 1),
    }
    with console.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wirelab", "serve"],
            env=env,
            stdout=out,
            stderr=out,
            preexec_fn=_lower_soft_limit,
        )
    try:
        deadline = time.monotonic() + 30
        while not re.search(r"running on http", console.read_text(), re.I):
            assert proc.poll() is None and time.monotonic() < deadline, console.read_text()
            time.sleep(0.05)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3] == str(hard), row  # soft == hard now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = console.read_text()
    assert f"raised the open-file limit (RLIMIT_NOFILE) from 512 to {hard}" in text, text
    assert f"listen backlog {somaxconn + 1} (WIRELAB_BACKLOG) capped at {somaxconn}" in text


def test_server_listens_with_the_configured_backlog(tmp_path: Path) -> None:
    from wirelab.server import ServerConfig
    from wirelab.server._serve import build_server

    config = ServerConfig(data_dir=tmp_path, connection_limits=ConnectionLimits(backlog=100))
    assert build_server(config).config.backlog == 100
