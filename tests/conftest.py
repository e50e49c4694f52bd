"""Shared fixtures: a real server on 127.0.0.1 port 0, in a thread of the test process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from wirelab.server import ServerConfig
from wirelab.testing._live import LiveServer, live_server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with custom settings: ``server_factory(stream_limits=...)``.
    Every server started is stopped at teardown."""
    with ExitStack() as stack:

        def make(**settings: Any) -> LiveServer:
            config = ServerConfig(data_dir=tmp_path / "data", **settings)
            return stack.enter_context(live_server(config))

        yield make


@pytest.fixture
def server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    """A server with default settings."""
    return server_factory()
