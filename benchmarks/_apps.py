"""Trivial streaming apps for the framework comparison and the throughput ceiling.

Each app answers ``GET /?size=S&count=N`` with one constant buffer of ``S`` bytes sent
``N`` times (default 1 MiB x 256 = 256 MiB) as a chunked HTTP/1.1 body (no
Content-Length), so that every server does the same work per byte. A buffer is built once
per size and then reused: the apps measure the framework and the server, not content.

The apps are loaded by the servers under test by import string, e.g.
``uvicorn _apps:raw_app`` with this directory as the working directory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from wirelab.framing import PREAMBLE

DEFAULT_SIZE = 1024 * 1024
DEFAULT_COUNT = 256
MAX_SIZE = 16 * 1024 * 1024
MEDIA_TYPE = "application/octet-stream"
_HEADERS = [(b"content-type", MEDIA_TYPE.encode())]
_BUFFERS: dict[int, bytes] = {}


def buffer(size: int) -> bytes:
    """The constant buffer of ``size`` bytes (built on first use)."""
    buf = _BUFFERS.get(size)
    if buf is None:
        buf = _BUFFERS[size] = (bytes(range(256)) * (size // 256 + 1))[:size]
    return buf


def params(query: Mapping[str, str]) -> tuple[bytes, int]:
    """(buffer, count) from the query parameters ``size`` and ``count``."""
    size = min(max(int(query.get("size", DEFAULT_SIZE)), 1), MAX_SIZE)
    count = max(int(query.get("count", DEFAULT_COUNT)), 0)
    return buffer(size), count


def _scope_params(scope: Scope) -> tuple[bytes, int]:
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    return params(query)


async def _chunks(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


def _gc_tuning() -> None:
    """BENCH_GC_TUNING=wirelab: the GC settings `wirelab serve` applies at start-up;
    ``freeze:T0,T1,T2``: gc.freeze() and those thresholds; unset: CPython's defaults."""
    tuning = os.environ.get("BENCH_GC_TUNING", "")
    if tuning == "wirelab":
        from wirelab.server._serve import GC_THRESHOLDS

        tuning = "freeze:" + ",".join(map(str, GC_THRESHOLDS))
    if tuning.startswith("freeze:"):
        t0, t1, t2 = (int(x) for x in tuning.removeprefix("freeze:").split(","))
        gc.collect()
        gc.freeze()
        gc.set_threshold(t0, t1, t2)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _gc_tuning()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app: no framework at all."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    chunk, count = _scope_params(scope)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    for _ in range(count):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- Starlette StreamingResponse ------------------------------------------------------


async def _starlette_endpoint(request: Request) -> Response:
    return StreamingResponse(_chunks(*params(request.query_params)), media_type=MEDIA_TYPE)


starlette_app = Starlette(routes=[Route("/", _starlette_endpoint)])


# --- FastAPI StreamingResponse --------------------------------------------------------

fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/")
async def _fastapi_endpoint(
    size: int = DEFAULT_SIZE, count: int = DEFAULT_COUNT
) -> StreamingResponse:
    chunk, count = params({"size": str(size), "count": str(count)})
    return StreamingResponse(_chunks(chunk, count), media_type=MEDIA_TYPE)


# --- FastAPI routing + a raw ASGI response class --------------------------------------


class RawStreamResponse(Response):
    """A Response whose ``__call__`` writes ASGI messages itself.

    No iterator protocol, no task group listening for disconnects: a client that goes
    away surfaces as an ``OSError`` from ``send`` (ASGI spec 2.4) and ends the loop.
    """

    media_type = MEDIA_TYPE

    def __init__(self, chunk: bytes, count: int, **kwargs: Any) -> None:
        super().__init__(content=None, **kwargs)
        self.chunk = chunk
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": _HEADERS})
        try:
            for _ in range(self.count):
                await send({"type": "http.response.body", "body": self.chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return


fastapi_raw_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_raw_app.get("/", response_class=RawStreamResponse)
async def _fastapi_raw_endpoint(
    size: int = DEFAULT_SIZE, count: int = DEFAULT_COUNT
) -> RawStreamResponse:
    return RawStreamResponse(*params({"size": str(size), "count": str(count)}))


# --- paced small files in wirelab's frame format: the floor for benchmarks/concurrency.py


def _frame(ftype: bytes, payload: bytes) -> bytes:
    # not wirelab.framing.encode_frame: the floor does no checks at all
    return ftype + len(payload).to_bytes(4, "big") + payload


_E_FRAME = _frame(b"E", json.dumps({"index": 0, "sha256": "0" * 64}).encode())


async def paced_app(scope: Scope, receive: Receive, send: Send) -> None:
    """What a stream server cannot avoid doing: one write per paced file, nothing else.

    Answers ``GET /v1/stream?count=C&min_interval=T&max_size=S`` (other parameters are
    ignored) with valid-looking frames: an S frame, then every ``T`` seconds one message
    holding F (with ``offset``), D (``S`` constant bytes) and E (a dummy digest), then Z.
    No validation, no generation, no hashing, no middleware: the same client measured
    against this app shows the lateness and CPU that uvicorn and the kernel alone cost.
    """
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    count = int(query.get("count", "10"))
    interval = float(query.get("min_interval", "0.5"))
    data = _frame(b"D", buffer(min(max(int(query.get("max_size", "4096")), 0), MAX_SIZE)))
    loop = asyncio.get_running_loop()
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    t0 = loop.time()
    header = json.dumps({"version": 1, "count": count}).encode()
    await send({"type": "http.response.body", "body": PREAMBLE + _frame(b"S", header),
                "more_body": True})  # fmt: skip
    for index in range(count):
        offset = (index + 1) * interval
        delay = t0 + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        meta = json.dumps({"index": index, "offset": offset}).encode()
        body = b"".join((_frame(b"F", meta), data, _E_FRAME))
        await send({"type": "http.response.body", "body": body, "more_body": True})
    end = _frame(b"Z", json.dumps({"count": count}).encode())
    await send({"type": "http.response.body", "body": end, "more_body": False})
