"""Shared by the modules that run inner pytest sessions with the ``tcpserver`` plugin."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

# Plugins that the inner sessions do not need (they only cost start-up time).
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """No ``tcpserver`` thread outlives the test (its inner sessions included)."""
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("wirelab-tcpserver")]
    assert leaked == []


def outcomes(reprec: pytest.HookRecorder) -> dict[str, tuple[str, str]]:
    """Per test: ``("passed" | "failed" | "error at <phase>" | "skipped", message)``."""
    result: dict[str, tuple[str, str]] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            kind = "failed" if report.when == "call" else f"error at {report.when}"
            result[name] = (kind, crash.message if crash is not None else str(report.longrepr))
        elif report.skipped:
            result[name] = ("skipped", "")
        elif report.when == "call":
            result[name] = ("passed", "")
    return result
