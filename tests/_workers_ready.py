"""Waiting for ``wirelab serve --workers 2`` to announce its processes (shared by the
tests that start one)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

_READY = re.compile(r"2 server processes \((\d+), (\d+)\) on port (\d+)")


def wait_for_two_workers(
    parent: subprocess.Popen[bytes], log: Path, timeout: float
) -> tuple[set[int], int]:
    """The two processes' pids and the port, once ``parent`` logged them to ``log``;
    fails with the log when ``parent`` exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        assert parent.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        ready = _READY.search(log.read_text())
        if ready is not None:
            return {int(ready[1]), int(ready[2])}, int(ready[3])
        time.sleep(0.05)
