"""HTTP routes of the Stream service: ``/v1/stream``, its manifest, and the classic endpoints.

The handlers take the bare request and parse the query with :func:`parse_stream_query`
(FastAPI's per-parameter dependency injection cost ~1 ms of CPU per request, which mattered
for thousands of short streams). Errors keep FastAPI's 422 body shape, ``{"detail": [{"loc":
["query", NAME], "msg": RULE, ...}]}``, and the OpenAPI document still lists every
parameter (generated from the same table).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..framing._schema import STREAM_VERSION
from ._classic import SlowPacer, classic_count
from ._content import ContentSource
from ._engine import run_framed_stream
from ._params import StreamLimits, StreamParams
from ._plan import PLAN_OF_VERSION, iter_plan, new_seed
from ._query import QueryCache, QueryError, openapi_parameters, parse_stream_query, split_query
from ._raw import run_raw_stream
from ._runtime import StreamRuntime

__all__ = [
    "RAW_SEND_KEY",
    "STREAM_MEDIA_TYPE",
    "FastPath",
    "build_fast_path",
    "build_router",
    "split_query",
]

#: Scope key under which the app stores the server's own ``send`` callable.
RAW_SEND_KEY = "wirelab.raw_send"


def stream_media_type(version: int) -> str:
    """The ``Content-Type`` of a framed stream of format ``version``."""
    return f"application/vnd.wirelab.stream; version={version}"


STREAM_MEDIA_TYPE = stream_media_type(STREAM_VERSION)
_CLASSIC_UNIT = 1024  # classic files are whole KiB
_CLASSIC_DEFAULT_COUNT = 100
_CLASSIC_QUERY = frozenset(("seed", "speed"))

Runner = Callable[[Receive, Send, Send], Awaitable[None]]
#: ``await fast(scope, receive, send)``: True when the request was served, False when it
#: must go through the app's full stack (see :func:`build_fast_path`).
FastPath = Callable[[Scope, Receive, Send], Awaitable[bool]]


class _ASGIResponse(Response):
    """A response whose body is produced by a coroutine that speaks ASGI directly.

    The hot path bypasses Starlette's StreamingResponse so that each file's framing and
    each classic file map onto exactly the ASGI messages we choose.
    """

    def __init__(self, run: Runner) -> None:
        super().__init__()
        self._run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's unwrapped send, if the app stored it (see wirelab.server._app).
        raw_send = scope.get(RAW_SEND_KEY, send)
        await self._run(receive, send, raw_send)


def _stream_headers(seed: int, count: int, media_type: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", media_type.encode()),
        (b"cache-control", b"no-store"),
        # Ask reverse proxies (nginx honours this) not to buffer a paced stream.
        (b"x-accel-buffering", b"no"),
        (b"wirelab-seed", str(seed).encode()),
        (b"wirelab-count", str(count).encode()),
    ]


def _manifest(params: StreamParams, seed: int, version: int) -> dict[str, Any]:
    """Plan and hash every file of a stream of format ``version`` without sending it (CPU
    bound: run it in a thread)."""
    content = ContentSource(params, seed)
    files = []
    total = 0
    for spec in iter_plan(params, seed, generator=PLAN_OF_VERSION[version]):
        digest = content.known_digest(spec.size)
        if digest is None:
            h = content.new_hasher()
            for chunk in content.file_chunks(spec.size):
                h.update(chunk)
            digest = h.hexdigest()
        total += spec.size
        files.append(
            {"index": spec.index, "name": spec.name, "size": spec.size,
             "offset": round(spec.offset, 6), params.digest: digest}
        )  # fmt: skip
    return {
        "version": version, "seed": seed, "count": params.count, "digest": params.digest,
        "total_bytes": total,
        "dtype": params.dtype, "byteorder": params.byteorder,
        "params": params.as_dict(), "files": files,
    }  # fmt: skip


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The files, framed as specified in docs/protocol/stream.md.",
        "content": {STREAM_MEDIA_TYPE: _BINARY},
        "headers": {
            "Wirelab-Seed": {"description": "The seed used (reproduce with ?seed=)",
                             "schema": {"type": "integer"}},
        },
    },
    422: {"description": "A parameter is invalid or exceeds a server limit."},
}  # fmt: skip
_MANIFEST_DOC: dict[int | str, dict[str, Any]] = {
    422: {"description": "A parameter is invalid, exceeds a server limit, or count * max_size "
          "exceeds the manifest's own byte limit."},
}  # fmt: skip
_CLASSIC_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Big-endian int16 files, each exactly one HTTP chunk, nothing else.",
        "content": {"application/octet-stream": _BINARY},
    },
    404: {"description": "n is not a whole number >= 0 (as for any unknown path)."},
    422: {"description": "n exceeds a server limit, or a parameter is invalid."},
}
_N_PARAM = {
    "name": "n", "in": "path", "required": True,
    "description": "Number of files (0: an empty 200).",
    "schema": {"type": "integer", "minimum": 0, "default": _CLASSIC_DEFAULT_COUNT},
}  # fmt: skip


def _parse(request: Request, limits: StreamLimits, **options: Any) -> tuple[StreamParams, int]:
    """The validated parameters, set to the seed the response uses (picked if none was
    sent, so that the ``S`` frame and the manifest echo it), and that seed."""
    try:
        return _parse_pairs(request.query_params.multi_items(), limits, **options)
    except QueryError as exc:
        raise RequestValidationError(exc.errors) from None


def _parse_pairs(
    pairs: Iterable[tuple[str, str]], limits: StreamLimits, **options: Any
) -> tuple[StreamParams, int]:
    params = parse_stream_query(pairs, limits, **options)
    if params.seed is not None:
        return params, params.seed
    seed = new_seed()
    return replace(params, seed=seed), seed


def _classic_count(request: Request) -> int:
    """The path's file count; a bad one is a 404, as the original's int route answered."""
    raw = request.path_params.get("n")
    count = classic_count(raw, _CLASSIC_DEFAULT_COUNT)
    if count is None:
        detail = f"Not Found: n in the path must be a whole number >= 0, got {raw!r}"
        raise HTTPException(404, detail)
    return count


def build_fast_path(runtime: StreamRuntime, limits: StreamLimits) -> FastPath:
    """``GET /v1/stream`` straight from the server, without the framework's routing,
    dependency solving and middleware (about half the CPU of a short stream's request:
    benchmarks/README.md, connection bursts).

    It serves only valid requests: an invalid query returns False before anything is sent,
    and the app then passes the request to its full stack, which answers the 422 (so every
    error keeps its shape). The app uses it only when no middleware must see streams (no
    CORS). The query is split as Starlette splits it, so both paths see the same pairs;
    the parameters other than the seed are validated once per distinct query
    (:class:`~._query.QueryCache`).
    """

    queries = QueryCache(limits)
    media_type = stream_media_type(runtime.format_version)

    async def fast(scope: Scope, receive: Receive, send: Send) -> bool:
        parsed = queries.parse_query(scope.get("query_string", b""))
        if parsed is None:
            return False
        params, seed = parsed
        if seed is None:
            seed = new_seed()
        # params.seed stays unset: the engine takes the seed apart (no copy of params).
        headers = _stream_headers(seed, params.count, media_type)
        runtime.fast_requests += 1
        await run_framed_stream(runtime, params, seed, headers, receive, send)
        return True

    return fast


def build_router(runtime: StreamRuntime, limits: StreamLimits) -> APIRouter:
    """The Stream service's routes, bound to one runtime and one set of limits."""
    router = APIRouter(tags=["stream"])
    media_type = stream_media_type(runtime.format_version)
    query_doc = {"parameters": openapi_parameters()}

    @router.get("/v1/stream", response_class=Response, responses=_STREAM_DOC,
                openapi_extra=query_doc)  # fmt: skip
    async def stream(request: Request) -> Response:
        """Stream a sequence of synthetic binary files in the wirelab stream format.

        The same parameters and seed give a byte-identical body. Without a seed the server
        picks one and reports it in the `Wirelab-Seed` header.
        """
        params, seed = _parse(request, limits)
        headers = _stream_headers(seed, params.count, media_type)

        async def run(receive: Receive, send: Send, raw_send: Send) -> None:
            await run_framed_stream(runtime, params, seed, headers, receive, send, raw_send)

        return _ASGIResponse(run)

    @router.get("/v1/stream/manifest", openapi_extra=query_doc, responses=_MANIFEST_DOC)
    async def manifest(request: Request) -> Any:
        """The files `/v1/stream` would send for the same parameters, without their data:
        index, name, size, scheduled offset (seconds) and digest (a member named after the
        `digest` algorithm, BLAKE3 unless `digest=sha256`).

        Computing it hashes every file, so `count * max_size` is capped lower than for a
        stream (the server's manifest limit, 256 MiB by default): 422 beyond it."""
        params, seed = _parse(request, limits, manifest=True)
        loop = asyncio.get_running_loop()
        job = functools.partial(_manifest, params, seed, runtime.format_version)
        return await loop.run_in_executor(runtime.executor, job)

    def classic(slow: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            count = _classic_count(request)
            fixed = {
                "count": count, "min_size": _CLASSIC_UNIT, "max_size": 1024 * _CLASSIC_UNIT,
                "min_interval": 0.001, "max_interval": 1.0,
                "dtype": "int16", "byteorder": "big", "content": "random",
            }  # fmt: skip
            params, seed = _parse(request, limits, allowed=_CLASSIC_QUERY, fixed=fixed,
                                  rename={"count": "n"})  # fmt: skip
            headers = _stream_headers(seed, count, "application/octet-stream")

            async def run(receive: Receive, send: Send, raw_send: Send) -> None:
                if slow:  # same waits, slower delivery: see _classic
                    plan = iter_plan(params, seed, size_unit=_CLASSIC_UNIT, generator="pcg64")
                    raw_send = SlowPacer(raw_send, plan, params.speed)
                await run_raw_stream(
                    runtime, params, seed, _CLASSIC_UNIT, headers, receive, send, raw_send
                )

            return _ASGIResponse(run)

        return endpoint

    classic_query = openapi_parameters(["seed", "speed"])
    for path, slow in (("/stream", False), ("/streamSLOW", True)):
        handler = classic(slow)
        summary = "Classic stream" + (" (slow: each file produced at 1 MiB/s)" if slow else "")
        for route, extra in ((path, []), (path + "/{n}", [_N_PARAM])):
            router.add_api_route(
                route, handler, methods=["GET"], summary=summary, response_class=Response,
                responses=_CLASSIC_DOC, openapi_extra={"parameters": [*extra, *classic_query]},
            )  # fmt: skip
    return router
