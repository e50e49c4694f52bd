"""Running the app under uvicorn: signals, graceful shutdown, GC tuning."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import socket
from typing import Any

import uvicorn

from ..stream import StreamRuntime
from ._app import create_app
from ._config import ServerConfig
from ._lock import DataDirLock
from ._malloc import tune_malloc

__all__ = ["GC_THRESHOLDS", "Server", "build_server", "run"]

GC_THRESHOLDS = (10_000, 10, 1_000)


def _fastest(choices: list[tuple[str, str]]) -> str:
    for module, name in choices:
        if importlib.util.find_spec(module) is not None:
            return name
    return choices[-1][1]


class Server(uvicorn.Server):
    """uvicorn's server, plus: on SIGINT/SIGTERM, streams in progress end with an X frame.

    Without this, uvicorn would wait for every paced stream to finish on its own.
    """

    def __init__(self, config: uvicorn.Config, runtime: StreamRuntime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after its graceful shutdown, so the process would die
        # "killed by signal"; a completed graceful shutdown is a success: exit status 0.
        self._captured_signals.clear()
        # Called from a signal handler: hand the work to the loop thread-safely.
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.runtime.shutdown)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)


def build_server(config: ServerConfig) -> Server:
    app = create_app(config)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        loop=_fastest([("uvloop", "uvloop"), ("asyncio", "asyncio")]),
        http=_fastest([("httptools", "httptools"), ("h11", "h11")]),
        lifespan="on",
        timeout_graceful_shutdown=int(config.graceful_timeout),
        server_header=False,
    )
    return Server(uv_config, app.state.stream_runtime)


def run(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; returns after a clean shutdown.

    Raises :class:`~wirelab.server._lock.DataDirLockedError` at once if another server
    holds ``config.data_dir`` (see :mod:`._lock`); the lock is held until return.
    """
    logging.getLogger("wirelab").setLevel(config.log_level.upper())
    with DataDirLock(config.data_dir):
        server = build_server(config)
        tune_gc()
        tune_malloc()
        server.run()


def tune_gc() -> None:
    """GC settings for a long-running server process (not applied to embedded servers,
    e.g. in tests, where the host process owns the GC)."""
    # Objects alive after start-up live for the whole run: move them out of the GC's
    # sight. Then bound the pauses: a generation-1 collection scans up to
    # threshold0 * threshold1 objects (100k here, a few ms), and full collections,
    # which scan every live object (~1M with 10k streams, ~0.3 s), become rare.
    # Measured in benchmarks/concurrency.py (see docs/design.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
