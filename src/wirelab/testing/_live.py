"""Run a real wirelab server on 127.0.0.1 port 0 in a background thread (for tests).

Unlike an in-memory ASGI transport this goes through real sockets and the real uvicorn
HTTP implementation, so chunking, backpressure and disconnects behave as in production.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["LiveServer", "live_server"]


@dataclass
class LiveServer:
    """A running server: ``url`` to talk to it, ``app`` to look inside (``app.state``)."""

    url: str
    host: str
    port: int
    app: Any

    @property
    def stream_runtime(self) -> Any:
        return self.app.state.stream_runtime

    def settle(self, timeout: float = 30) -> None:
        """Wait until the work the server does after answering is done: the deletion of
        acknowledged files' blobs, which a store that deletes in batches (S3) does in
        the background. Call before looking at the storage."""
        service = self.app.state.relay_runtime.service
        if service is not None:
            flush = service.reaper.flush()
            asyncio.run_coroutine_threadsafe(flush, self.app.state.loop).result(timeout)


@contextmanager
def live_server(config: Any = None, *, data_dir: Path | None = None) -> Iterator[LiveServer]:
    """Start a server (``ServerConfig``; host forced to 127.0.0.1, port to 0), yield it,
    and stop it on exit. Errors raised while starting are re-raised here."""
    from ..server import ServerConfig
    from ..server._serve import build_server

    config = config or ServerConfig()
    overrides: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "log_level": "warning"}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    config = replace(config, **overrides)
    server = build_server(config)
    server.config.log_config = None  # leave the test's logging alone
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:  # pragma: no cover - surfaced below
            failure.append(exc)

    # uvicorn installs signal handlers only in the main thread, so the test keeps its own.
    thread = threading.Thread(target=target, name="wirelab-live-server", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.01)
    if failure or not server.started:
        raise RuntimeError("wirelab test server failed to start") from (
            failure[0] if failure else None
        )
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        url = f"{config.scheme}://127.0.0.1:{port}"
        yield LiveServer(url, "127.0.0.1", port, server.config.app)
    finally:
        server.should_exit = True
        loop = server._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(server.runtime.shutdown)
        thread.join(10)
        if failure:
            raise RuntimeError("wirelab test server crashed") from failure[0]
