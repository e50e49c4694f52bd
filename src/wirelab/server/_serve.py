"""Running the app under uvicorn: signals, graceful shutdown, GC tuning."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import importlib.util
import logging.config
import math
import os
import socket
import ssl
import sys
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn

from .._exceptions import UsageError
from ..coord import Coordinator, coordinator_for
from ..db import check_schema
from ..stream import StreamRuntime
from ._access_log import install_access_log_redaction
from ._app import create_app
from ._config import ServerConfig
from ._lock import DataDirLock
from ._malloc import tune_malloc
from ._os_limits import listen_backlog, raise_open_file_limit
from ._workers import run_workers

__all__ = ["GC_THRESHOLDS", "Server", "build_server", "run", "tls_options"]

GC_THRESHOLDS = (1_000, 10, 1_000)


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
        #: called once the server accepts connections (``serve --workers``)
        self.on_ready: Callable[[], None] | None = None

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
        if self.started and self.on_ready is not None:
            self.on_ready()


def _http_protocol(config: ServerConfig) -> type[asyncio.Protocol] | str:
    """httptools with the connection limits (see ``_http_guard``); else uvicorn's h11,
    which has its own head-size limit (answered 400) but no head timeout or cap."""
    if importlib.util.find_spec("httptools") is None:  # pragma: no cover - not CPython
        return "h11"
    from ._http_guard import guarded_protocol

    return guarded_protocol(config.connection_limits)


def _no_password() -> str:
    raise UsageError("the TLS key file is encrypted; give an unencrypted PEM key")


def tls_options(config: ServerConfig) -> dict[str, Any]:
    """uvicorn's TLS settings for ``config``, after loading the certificate and key once.

    Raises :class:`~wirelab.UsageError` with one readable line for a missing, unreadable
    or mismatched file (uvicorn would only fail later, with a traceback, and would ask for
    the passphrase of an encrypted key on the terminal).
    """
    if config.tls_certfile is None or config.tls_keyfile is None:
        return {}
    certfile, keyfile = str(config.tls_certfile), str(config.tls_keyfile)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            certfile, keyfile, password=_no_password
        )
    except OSError as exc:  # ssl.SSLError is an OSError too
        what = exc.strerror or getattr(exc, "reason", None) or exc
        raise UsageError(
            f"cannot load the TLS certificate {certfile} with key {keyfile}: {what}"
        ) from exc
    return {"ssl_certfile": certfile, "ssl_keyfile": keyfile}


def build_server(config: ServerConfig, log_config: dict[str, Any] | None = None) -> Server:
    app = create_app(config)
    limits = config.connection_limits
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        log_config=log_config,
        loop=_fastest([("uvloop", "uvloop"), ("asyncio", "asyncio")]),
        http=_http_protocol(config),
        lifespan="on",
        timeout_graceful_shutdown=int(config.graceful_timeout),
        timeout_keep_alive=max(1, math.ceil(limits.keepalive_timeout)),  # for h11
        h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=listen_backlog(limits.backlog),
        server_header=False,
        **tls_options(config),
    )
    install_access_log_redaction()
    return Server(uv_config, app.state.stream_runtime)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, plus the ``wirelab`` loggers on the same console handler
    (refusals, relay sweeps), at ``level``."""
    conf = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    conf["loggers"]["wirelab"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return conf


def run(config: ServerConfig, workers: int = 1) -> int:
    """Serve until SIGINT/SIGTERM with ``workers`` processes; the exit status (0 after a
    clean shutdown).

    Raises :class:`~wirelab.server._lock.DataDirLockedError` at once if another server
    holds ``config.data_dir`` (see :mod:`._lock`; the lock is held until return), and
    :class:`~wirelab.UsageError` for several workers without a distributed coordination
    or when the coordination service cannot be reached. A stream-only server
    (``config.only == "stream"``) keeps nothing in the data folder and shares no state
    between its processes: it takes no lock and needs no coordination. A bad
    ``WIRELAB_GIL_SWITCH_INTERVAL`` is a :class:`~wirelab.UsageError` too.
    """
    gil_switch_interval()  # checked here, before any process starts (set in each: _serve)
    if config.stream_only:
        return _run_processes(config, workers)
    coord = coordinator_for(config.coordination_url)
    if workers > 1 and not coord.distributed:
        raise UsageError(
            f"--workers {workers} needs a coordination the processes share: set"
            " WIRELAB_COORDINATION_URL (or --coordination-url) to redis://HOST:PORT/DB,"
            " or serve streams alone (--only stream), which needs none"
        )
    _check_reachable(coord)
    shared_by = coord.description if coord.distributed else None
    with DataDirLock(config.data_dir, shared_by):
        if config.database_url:  # refused here in one line, not as a failed start-up
            asyncio.run(check_schema(config.database_url))
        return _run_processes(config, workers)


def _run_processes(config: ServerConfig, workers: int) -> int:
    if workers == 1:
        return 0 if _serve(config) else 1
    return run_workers(
        workers, _serve_worker, config, host=config.host, port=config.port, on_ready=_ready
    )


def _check_reachable(coord: Coordinator) -> None:
    """Fail with one line now rather than in each process's start-up."""
    if not coord.distributed:
        return

    async def check() -> None:
        async with coord:
            pass

    try:
        asyncio.run(check())
    except Exception as exc:  # CoordinationError: one line
        raise UsageError(str(exc)) from None


def _serve(
    config: ServerConfig,
    sock: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
) -> bool:
    """Serve until stopped; whether the server had started (else its start-up failed)."""
    logging_setup = log_config(config.log_level)
    logging.config.dictConfig(logging_setup)  # before the limits are logged
    # Before the app is built: the default connection cap follows the soft limit.
    raise_open_file_limit()
    server = build_server(config, logging_setup)
    server.on_ready = on_ready
    tune_gc()
    tune_malloc()
    tune_gil()
    server.run(sockets=None if sock is None else [sock])
    return server.started


def _serve_worker(sock: socket.socket, ready: Callable[[], None], config: ServerConfig) -> None:
    """One process of ``serve --workers N`` (see :mod:`._workers`)."""
    lock: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if not config.stream_only:  # a stream-only server keeps nothing in the folder
        lock = DataDirLock(config.data_dir, coordinator_for(config.coordination_url).description)
    with lock:
        if not _serve(config, sock, ready):
            sys.exit(1)


def _ready(port: int, pids: list[int]) -> None:
    pid_list = ", ".join(map(str, pids))
    print(
        f"wirelab serve: {len(pids)} server processes ({pid_list}) on port {port}", file=sys.stderr
    )


#: The GIL switch interval of a server process, in seconds (Python's default: 0.005).
GIL_SWITCH_INTERVAL = 0.0005


def gil_switch_interval(environ: Mapping[str, str] = os.environ) -> float:
    """The GIL switch interval of a server process: ``WIRELAB_GIL_SWITCH_INTERVAL`` seconds,
    default :data:`GIL_SWITCH_INTERVAL`; a bad value is a :class:`~wirelab.UsageError`."""
    raw = environ.get("WIRELAB_GIL_SWITCH_INTERVAL")
    if raw is None:
        return GIL_SWITCH_INTERVAL
    try:
        interval = float(raw)
    except ValueError:
        interval = -1.0
    if not 0 < interval <= 1:
        raise UsageError(
            f"WIRELAB_GIL_SWITCH_INTERVAL must be seconds between 0 and 1, not {raw!r}"
        )
    return interval


def tune_gil(environ: Mapping[str, str] = os.environ) -> float:
    """Set this server process's :func:`gil_switch_interval` and return it.

    Why: the event loop and the pool threads (PostgreSQL, S3, files) take turns holding
    the GIL, and a thread whose answer has arrived waits until the holder lets go, up to
    the whole interval. With Python's 5 ms, a relayed file's database transaction spent a
    median 25-35 ms in its pool thread under 40 concurrent senders, most of it waiting
    for the GIL; at 0.5 ms the distributed relay moved ~30 % more files a second
    (benchmarks/README.md, "GIL switch interval"). A thread alone never switches.
    """
    interval = gil_switch_interval(environ)
    sys.setswitchinterval(interval)
    return interval


def tune_gc() -> None:
    """GC settings for a long-running server process (not applied to embedded servers,
    e.g. in tests, where the host process owns the GC)."""
    # Objects alive after start-up live for the whole run: move them out of the GC's
    # sight. Then bound the pauses: a generation-1 collection scans up to
    # threshold0 * threshold1 objects (10k here: at most a few ms; with 100k, 40 ms
    # pauses set the p99 of 3,000 paced streams), and full collections, which scan
    # every live object (~1M with 10k streams, ~0.3 s), become rare.
    # Measured in benchmarks/concurrency.py (see docs/design.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
