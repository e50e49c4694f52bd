"""ASGI application assembly: the server only assembles; each capability brings its routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from .._fsio import private_dir
from .._version import __version__
from ..coord import coordinator_for
from ..db import connect
from ..media import MediaRuntime, MediaService
from ..media import build_router as build_media_router
from ..media._classic_routes import build_classic_router
from ..relay import RelayRuntime, RelayService
from ..relay import build_router as build_relay_router
from ..relay import install as install_relay
from ..storage import open_blob_store
from ..stream import StreamRuntime
from ..stream._routes import RAW_SEND_KEY, FastPath, build_fast_path
from ..stream._routes import build_router as build_stream_router
from ._arrival import request_age
from ._assembly import media_blob_store, media_runner
from ._config import ServerConfig
from ._direct import direct_body, direct_start
from ._docs import install_docs
from ._errors import install_error_handlers
from ._lost import watch_connection

__all__ = ["create_app"]

_log = logging.getLogger("wirelab.server")

_DESCRIPTION = """\
wirelab serves synthetic file streams for testing stream consumers and store-and-forward
file queues between users (the relay, `docs/relay.md`). The stream wire format is specified in
`docs/protocol/stream.md`.
"""


class _App(FastAPI):
    """FastAPI, plus the server's own ``send`` stored in the scope for streaming routes,
    and a fast path for ``GET /v1/stream`` (``stream_fast_path``, when set).

    Every middleware layer wraps ``send``; a paced stream sends one message per file, so
    the stream routes send their body messages through the unwrapped callable (the head
    still goes through the wrappers, so they all see the response start). Thousands of
    streams may open within a second, so a valid stream request skips the framework
    altogether (see :func:`wirelab.stream._routes.build_fast_path`).
    """

    stream_fast_path: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            fast = self.stream_fast_path
            if (
                fast is not None
                and scope["path"] == "/v1/stream"
                and scope["method"] == "GET"
                and await fast(scope, receive, send)
            ):
                return
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def _prepare_data_dir(path: Path) -> None:
    """Create the data folder 0700; warn when an existing one is open to group or others
    (its mode is left alone: sharing it may be deliberate)."""
    bits = private_dir(path)
    if bits & 0o077:
        _log.warning(
            "data folder %s is accessible by group or others (mode %03o): "
            "it holds users' files and tokens; consider chmod 700 %s",
            path,
            bits,
            path,
        )


@contextlib.asynccontextmanager
async def _stream_executor(config: ServerConfig, runtime: StreamRuntime) -> AsyncIterator[None]:
    """The streams' worker threads for the app's lifetime; on exit, streams in progress
    are ended (with an ``X`` frame)."""
    # 0 worker threads: streams generate and hash on the loop thread (the keystream of
    # streams without waits on one thread of its own, see stream._prefill), and the
    # manifest uses the loop's default executor.
    with (
        ThreadPoolExecutor(
            max_workers=max(1, config.worker_threads), thread_name_prefix="wirelab-gen"
        ) as executor,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="wirelab-keystream") as keystream,
    ):
        runtime.executor = executor if config.worker_threads else None
        runtime.keystream_executor = keystream if _keystream_thread(config) else None
        try:
            yield
        finally:
            runtime.shutdown()
            runtime.executor = None
            runtime.keystream_executor = None


def _keystream_thread(config: ServerConfig) -> bool:
    """Whether zero-wait streams make their keystream on a thread of its own: when asked
    (the default), without worker threads (they make it themselves), and when the process
    may run on more than one CPU (on one, the thread would only take turns with the
    loop)."""
    return config.keystream_thread and not config.worker_threads and _usable_cpus() > 1


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _full_lifespan(
    config: ServerConfig, runtime: StreamRuntime, relay: RelayRuntime, media: MediaRuntime
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Every capability: the data folder, the database, the blob stores, the relay's
    sweeper and the media service."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _prepare_data_dir(config.data_dir)
        app.state.loop = asyncio.get_running_loop()
        async with (
            _stream_executor(config, runtime),
            await connect(config.metadata_url, pool_size=config.database_pool_size) as db,
            coordinator_for(config.coordination_url) as coord,
        ):
            db.users.cache_tokens(config.token_cache_seconds)
            limits = config.relay_limits
            blobs = open_blob_store(
                config.storage_url, "relay", config.data_dir, reserve_bytes=limits.disk_reserve
            )
            service = RelayService(db, blobs, limits, coord=coord)
            await service.recover()
            relay.service = service
            sweeper = asyncio.create_task(service.run_background(), name="wirelab-relay")
            media_service = MediaService(
                db,
                media_blob_store(config),
                config.media,
                config.data_dir / "media-work",
                runner=media_runner(config),
                shared=coord.distributed,
            )
            await media_service.start()
            media.service = media_service
            try:
                yield
            finally:
                media.service = None
                await media_service.stop()
                relay.service = None
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
                await service.close()

    return lifespan


def _stream_lifespan(
    config: ServerConfig, runtime: StreamRuntime
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The Stream service alone (``only="stream"``): nothing but its worker threads."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loop = asyncio.get_running_loop()
        async with _stream_executor(config, runtime):
            yield

    return lifespan


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """Build the wirelab ASGI app. ``app.state.stream_runtime`` exposes live counters.

    With ``config.only == "stream"`` the app serves the Stream service alone (with ``/``,
    ``/healthz`` and the docs) and opens nothing at start-up: no data folder, database
    or blob store."""
    config = config or ServerConfig()
    # Stream bodies past uvicorn's send where it is safe (see _direct).
    runtime = StreamRuntime(
        direct_body=direct_body,
        direct_start=direct_start,
        request_age=request_age,
        watch_connection=watch_connection,
    )
    relay = RelayRuntime()
    media = MediaRuntime()
    started = time.monotonic()
    stream_only = config.stream_only
    lifespan = (
        _stream_lifespan(config, runtime)
        if stream_only
        else _full_lifespan(config, runtime, relay, media)
    )

    app = _App(
        title="wirelab",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from the package (no CDN)
        redoc_url=None,
    )
    app.state.config = config
    app.state.stream_runtime = runtime
    app.state.relay_runtime = relay
    install_error_handlers(app)
    app.state.media_runtime = media

    @app.get("/", response_class=PlainTextResponse, tags=["service"])
    async def root() -> str:
        """A one-line connectivity check naming the service and its version."""
        served = "stream" if stream_only else "stream, relay and media"
        return f"wirelab {__version__}: {served} server is up. API docs: /docs\n"

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: 200 while the server accepts requests. ``pid`` names the server
        process that answered (``serve --workers N`` runs several), ``relay_long_polls``
        the long polls it holds open."""
        return {
            "status": "ok",
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - started, 3),
            "streams_active": len(runtime.active),
            "relay_long_polls": relay.service.long_polls if relay.service else 0,
        }

    app.include_router(build_stream_router(runtime, config.stream_limits))
    if not config.cors_origins:  # CORS headers come from middleware: full stack then
        app.stream_fast_path = build_fast_path(runtime, config.stream_limits)
    if not stream_only:
        app.include_router(build_relay_router(relay))
        app.include_router(build_media_router(media))
        if config.media_classic_user is not None:
            app.include_router(build_classic_router(media, config.media_classic_user))
    # The same middleware (CORS, method override) and error answers in either case.
    install_relay(app, config.cors_origins)
    install_docs(app)
    return app
