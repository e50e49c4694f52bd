"""Waiting for a condition a live server makes true (shared by the tests that poll one)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Return once ``condition()`` is true; fail the test if ``timeout`` seconds pass
    first (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
