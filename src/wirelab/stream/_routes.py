"""HTTP routes of the Stream service: ``/v1/stream``, its manifest, and the classic endpoints.

Validation has two layers: FastAPI checks each parameter's type and enum, then
:meth:`StreamParams.validate` checks the rules between parameters and the server limits.
Both answer 422 with the same body shape, ``{"detail": [{"loc": ["query", NAME], "msg":
RULE, ...}]}``, so a client handles one format.

(No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
locally defined endpoints at run time.)
"""

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._content import ContentSource
from ._engine import StreamRuntime, run_framed_stream, run_raw_stream
from ._params import MAX_SEED, Byteorder, Content, Dtype, InvalidParams, StreamLimits, StreamParams
from ._plan import iter_plan, new_seed

__all__ = ["RAW_SEND_KEY", "STREAM_MEDIA_TYPE", "build_router"]

#: Scope key under which the app stores the server's own ``send`` callable.
RAW_SEND_KEY = "wirelab.raw_send"

STREAM_MEDIA_TYPE = "application/vnd.wirelab.stream; version=1"
_CLASSIC_UNIT = 1024  # classic files are whole KiB
_CLASSIC_SLOW_FACTOR = 10.0  # classic SLOW waits are 10x longer: 10 ms .. 10 s

_STREAM_PARAMS = frozenset(
    (
        "count",
        "min_size",
        "max_size",
        "min_interval",
        "max_interval",
        "seed",
        "dtype",
        "byteorder",
        "content",
        "speed",
    )
)

_CLASSIC_PARAMS = frozenset(("n", "seed", "speed"))


class _ASGIResponse(Response):
    """A response whose body is produced by a coroutine that speaks ASGI directly.

    The hot path bypasses Starlette's StreamingResponse so that each file's framing and
    each classic file map onto exactly the ASGI messages we choose.
    """

    def __init__(self, run: Callable[[Receive, Send, Send], Awaitable[None]]) -> None:
        super().__init__()
        self._run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's unwrapped send, if the app stored it (see wirelab.server._app).
        raw_send = scope.get(RAW_SEND_KEY, send)
        await self._run(receive, send, raw_send)


def _reject(request: Request, problems: list[tuple[str, str]]) -> RequestValidationError:
    """A 422 in FastAPI's own shape; ``input`` is the raw query text (JSON-safe even for
    values such as ``inf``), or null when the parameter was not sent."""
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("query", name),
                "msg": msg,
                "input": request.query_params.get(name),
            }
            for name, msg in problems
        ]
    )


def _check(
    request: Request,
    params: StreamParams,
    limits: StreamLimits,
    allowed: frozenset[str] = _STREAM_PARAMS,
    rename: dict[str, str] | None = None,
) -> None:
    """Raise a 422 naming every unknown parameter and every broken rule.

    ``rename`` maps StreamParams fields to the names the endpoint exposes (classic ``n``).
    """
    unknown = sorted(set(request.query_params) - allowed)
    problems = [(name, "unknown parameter") for name in unknown]
    try:
        params.validate(limits)
    except InvalidParams as exc:
        rename = rename or {}
        problems += [(rename.get(p.param, p.param), p.message) for p in exc.problems]
    if problems:
        raise _reject(request, problems)


def _stream_headers(seed: int, count: int, media_type: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", media_type.encode()),
        (b"cache-control", b"no-store"),
        # Ask reverse proxies (nginx honours this) not to buffer a paced stream.
        (b"x-accel-buffering", b"no"),
        (b"wirelab-seed", str(seed).encode()),
        (b"wirelab-count", str(count).encode()),
    ]


def _manifest(params: StreamParams, seed: int) -> dict[str, Any]:
    """Plan and hash every file without sending it (CPU bound: run it in a thread)."""
    content = ContentSource(params, seed)
    files = []
    total = 0
    for spec in iter_plan(params, seed):
        digest = content.known_digest(spec.size)
        if digest is None:
            h = hashlib.sha256()
            for chunk in content.file_chunks(spec.size):
                h.update(chunk)
            digest = h.hexdigest()
        total += spec.size
        files.append(
            {
                "index": spec.index,
                "name": spec.name,
                "size": spec.size,
                "offset": round(spec.offset, 6),
                "sha256": digest,
            }
        )
    return {
        "version": 1,
        "seed": seed,
        "count": params.count,
        "total_bytes": total,
        "dtype": params.dtype,
        "byteorder": params.byteorder,
        "params": params.as_dict(),
        "files": files,
    }


_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The files, framed as specified in docs/protocol/stream.md.",
        "content": {STREAM_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "Wirelab-Seed": {
                "description": "The seed used (reproduce with ?seed=)",
                "schema": {"type": "integer"},
            },
        },
    },
    422: {"description": "A parameter is invalid or exceeds a server limit."},
}
_CLASSIC_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Big-endian int16 files, each exactly one HTTP chunk, nothing else.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
}


def build_router(runtime: StreamRuntime, limits: StreamLimits) -> APIRouter:
    """The Stream service's routes, bound to one runtime and one set of limits."""
    router = APIRouter(tags=["stream"])
    defaults = StreamParams()

    def parse(  # the shared query parameters of /v1/stream and its manifest
        count: Annotated[int, Query(description="Number of files.")] = defaults.count,
        min_size: Annotated[int, Query(description="Smallest file, bytes.")] = defaults.min_size,
        max_size: Annotated[int, Query(description="Largest file, bytes.")] = defaults.max_size,
        min_interval: Annotated[
            float, Query(description="Shortest wait before a file, seconds.")
        ] = defaults.min_interval,
        max_interval: Annotated[
            float, Query(description="Longest wait before a file, seconds.")
        ] = defaults.max_interval,
        seed: Annotated[
            int | None, Query(ge=0, le=MAX_SEED, description="Reproduce a stream exactly.")
        ] = None,
        dtype: Annotated[Dtype, Query(description="Sample type.")] = defaults.dtype,
        byteorder: Annotated[Byteorder, Query()] = defaults.byteorder,
        content: Annotated[Content, Query(description="Sample values.")] = defaults.content,
        speed: Annotated[float, Query(description="Divides every wait.")] = defaults.speed,
    ) -> StreamParams:
        return StreamParams(
            count=count,
            min_size=min_size,
            max_size=max_size,
            min_interval=min_interval,
            max_interval=max_interval,
            seed=seed,
            dtype=dtype,
            byteorder=byteorder,
            content=content,
            speed=speed,
        )

    @router.get("/v1/stream", response_class=Response, responses=_STREAM_DOC)
    async def stream(request: Request, params: Annotated[StreamParams, Depends(parse)]) -> Response:
        """Stream a sequence of synthetic binary files in the wirelab stream format.

        The same parameters and seed give a byte-identical body. Without a seed the server
        picks one and reports it in the `Wirelab-Seed` header.
        """
        _check(request, params, limits)
        seed = params.seed if params.seed is not None else new_seed()
        params = replace(params, seed=seed)  # the S frame echoes the seed actually used
        headers = _stream_headers(seed, params.count, STREAM_MEDIA_TYPE)

        async def run(receive: Receive, send: Send, raw_send: Send) -> None:
            await run_framed_stream(runtime, params, seed, headers, receive, send, raw_send)

        return _ASGIResponse(run)

    @router.get("/v1/stream/manifest")
    async def manifest(request: Request, params: Annotated[StreamParams, Depends(parse)]) -> Any:
        """The files `/v1/stream` would send for the same parameters, without their data:
        index, name, size, scheduled offset (seconds) and SHA-256."""
        _check(request, params, limits)
        seed = params.seed if params.seed is not None else new_seed()
        params = replace(params, seed=seed)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(runtime.executor, _manifest, params, seed)

    def classic(slow: bool) -> Callable[..., Awaitable[Response]]:
        factor = _CLASSIC_SLOW_FACTOR if slow else 1.0

        async def endpoint(
            request: Request,
            n: int = 100,
            seed: Annotated[int | None, Query(ge=0, le=MAX_SEED)] = None,
            speed: Annotated[float, Query(gt=0)] = 1.0,
        ) -> Response:
            params = StreamParams(
                count=n,
                min_size=_CLASSIC_UNIT,
                max_size=1024 * _CLASSIC_UNIT,
                min_interval=0.001 * factor,
                max_interval=1.0 * factor,
                dtype="int16",
                byteorder="big",
                content="random",
                speed=speed,
                seed=seed,
            )
            if n < 1:
                raise RequestValidationError(
                    [
                        {
                            "type": "value_error",
                            "loc": ("path", "n"),
                            "msg": "must be >= 1",
                            "input": n,
                        }
                    ]
                )
            _check(request, params, limits, _CLASSIC_PARAMS, {"count": "n"})
            chosen = seed if seed is not None else new_seed()
            headers = _stream_headers(chosen, n, "application/octet-stream")

            async def run(receive: Receive, send: Send, raw_send: Send) -> None:
                await run_raw_stream(runtime, params, chosen, _CLASSIC_UNIT, headers, receive, send)

            return _ASGIResponse(run)

        return endpoint

    for path, slow in (("/stream", False), ("/streamSLOW", True)):
        handler = classic(slow)
        summary = "Classic stream" + (" (slow: waits 10 ms .. 10 s)" if slow else "")
        router.add_api_route(
            path,
            handler,
            methods=["GET"],
            summary=summary,
            response_class=Response,
            responses=_CLASSIC_DOC,
        )
        router.add_api_route(
            path + "/{n}",
            handler,
            methods=["GET"],
            summary=summary,
            response_class=Response,
            responses=_CLASSIC_DOC,
        )
    return router
