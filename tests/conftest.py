"""Shared fixtures: a real server on 127.0.0.1 port 0, in a thread of the test process."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from wirelab.server import ServerConfig
from wirelab.testing._live import LiveServer, live_server


@pytest.fixture
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with custom settings: ``server_factory(stream_limits=...)``.

    Every server started is stopped at teardown. Each gets its own data folder (unless
    ``data_dir=`` is given), outside
    the test's ``tmp_path`` so that a test's own files are never mixed with the server's.
    """
    with ExitStack() as stack:

        def make(**settings: Any) -> LiveServer:
            if "data_dir" not in settings:
                settings["data_dir"] = tmp_path_factory.mktemp("server-data")
            config = ServerConfig(**settings)
            return stack.enter_context(live_server(config))

        yield make


@pytest.fixture
def server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    """A server with default settings."""
    return server_factory()


def _open_fds() -> set[int] | None:
    try:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # not Linux: the ResourceWarning check still applies
        return None


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The test must leave no thread running and no descriptor open (use it with
    ``@pytest.mark.usefixtures("no_leaks")`` or a module's ``pytestmark``)."""
    threads = set(threading.enumerate())
    fds = _open_fds()
    yield
    gc.collect()  # an unclosed socket warns now, inside this test
    assert set(threading.enumerate()) - threads == set()
    after = _open_fds()
    if fds is not None and after is not None:
        assert after - fds == set()
