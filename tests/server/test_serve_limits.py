"""`wirelab serve` as a process: connection limits from WIRELAB_* variables, refusals and
a redacted access log on its console."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_limits_from_environment_and_refusals_on_the_console(tmp_path: Path) -> None:
    console = tmp_path / "console.log"  # stdout (access log) and stderr
    env = {
        **os.environ,
        "WIRELAB_PORT": "0",
        "WIRELAB_DATA_DIR": str(tmp_path / "d"),
        "WIRELAB_MAX_HEADER_BYTES": "1024",
        "WIRELAB_KEEPALIVE_TIMEOUT": "0.5",
    }
    with console.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wirelab", "serve"], env=env, stdout=err, stderr=err
        )
    try:
        deadline = time.monotonic() + 30
        while not (m := re.search(r"running on (http://[\d.]+:\d+)", console.read_text(), re.I)):
            assert proc.poll() is None and time.monotonic() < deadline, console.read_text()
            time.sleep(0.05)
        url = m.group(1)
        r = httpx.get(url + "/healthz", headers={"X-Big": "a" * 2048})
        assert r.status_code == 431 and "1024" in r.json()["detail"]
        assert httpx.get(url + "/healthz", params={"token": "s3cret"}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = console.read_text()
    assert re.search(r"refused request from 127\.0\.0\.1:\d+: 431", text), text
    assert "/healthz?token=***" in text and "s3cret" not in text
