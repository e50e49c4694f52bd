"""The classic clip API under ``/hopster`` (tag ``classic``): the original clip service's
unauthenticated endpoints, as thin routes over :class:`MediaService`.

Served only with ``--media-classic-user NAME``: every job is NAME's (visible to NAME
through ``/v1/media`` too), sources only through ``--media-source-template``. The rules
(bodies, times, names, error codes) are :mod:`._classic`; this module only maps them onto
the service: ``schedule`` submits an exact MP4 job (the service returns the existing job
for the same clip while it is queued, running or has its result, so a job starts unless
that file exists), and a file name finds the newest job of its clip.

A failed job: ``progress`` answers ``{"is_finished": true}`` (the job ended; a polling
client stops), ``download`` answers HTTP 400 ``{"error": {"code": 200, "message": "Video
could not be made: NAME: <reason>"}}``, and scheduling the same clip again starts a new
job (``is_finished`` is then false until it ends). See ``docs/media-classic.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..db import MediaJob
from ..relay import content_disposition
from ..storage import BlobNotFoundError, BlobReader
from ._classic import (
    CODE_ARGUMENT,
    CODE_TIME,
    CODE_VIDEO,
    WELCOME,
    ClassicError,
    parse_file_name,
    parse_schedule,
)
from ._errors import LimitExceeded, MediaError
from ._request import parse_request
from ._routes import MediaRuntime

__all__ = ["MAX_SCHEDULE_BODY", "build_classic_router"]

MAX_SCHEDULE_BODY: Final = 64 * 1024
"""A larger ``schedule`` body is refused (code 100) before it is read to its end."""

_ERROR: dict[int | str, dict[str, Any]] = {
    400: {"description": 'Error: `{"error": {"message": str, "code": 100|200|300}}`.'}
}


def _error(exc: ClassicError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=400)


async def _body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_SCHEDULE_BODY:
            raise ClassicError(
                CODE_ARGUMENT, f"Invalid JSON for `schedule`: over {MAX_SCHEDULE_BODY} bytes"
            )
    return bytes(data)


async def _read(reader: BlobReader) -> AsyncIterator[bytes]:
    async with reader:
        async for chunk in reader:
            yield chunk


def build_classic_router(runtime: MediaRuntime, user: str) -> APIRouter:
    """The ``/hopster`` routes; jobs are owned by ``user``."""
    router = APIRouter(prefix="/hopster", tags=["classic"])

    async def find(name: str) -> MediaJob:
        """The newest job of the clip ``name`` describes; code 200 if there is none."""
        service = runtime.require()
        clip = parse_file_name(name)
        try:
            if clip is None:
                raise ClassicError(CODE_VIDEO, f"Video does not exist: {name}")
            request = parse_request(
                clip.job_body(), template=service.settings.source_template, limits=service.settings
            )
        except MediaError:  # an id or a clip this server would never have made
            raise ClassicError(CODE_VIDEO, f"Video does not exist: {name}") from None
        job = await service.db.media.find_latest(user, request.digest())
        if job is None:
            raise ClassicError(CODE_VIDEO, f"Video does not exist: {name}")
        return job

    @router.get("/", summary="Welcome")
    async def welcome() -> dict[str, str]:
        """The original greeting."""
        return {"message": WELCOME}

    @router.post(
        "/schedule",
        summary="Schedule a clip",
        responses=_ERROR,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "video_id": {"type": "string"},
                    "start": {"type": "string", "description": "Time of day, 00:00:03."},
                    "stop": {"type": "string", "description": "Time of day, 00:00:06."},
                }}}},
            }
        },
    )  # fmt: skip
    async def schedule(request: Request) -> Response:
        """Body JSON whatever the Content-Type; answers `{"video_file": NAME}`. A job
        starts unless that file exists (or is being made)."""
        try:
            clip = parse_schedule(await _body(request))
            try:
                await runtime.require().submit(user, clip.job_body())
            except LimitExceeded as exc:
                raise ClassicError(CODE_TIME, f"Invalid time for `schedule`: {exc}") from None
            except MediaError:
                raise ClassicError(CODE_VIDEO, f"Video does not exist: {clip.video_id}") from None
        except ClassicError as exc:
            return _error(exc)
        return JSONResponse({"video_file": clip.file_name})

    @router.get("/progress", summary="Is the clip finished?", responses=_ERROR)
    async def progress(reference: Annotated[str | None, Query()] = None) -> Response:
        """`{"is_finished": bool}`: true once the job ended, failed ones included (their
        download answers the error)."""
        try:
            if reference is None:
                raise ClassicError(CODE_ARGUMENT, "Missing argument: 'reference'")
            job = await find(reference)
        except ClassicError as exc:
            return _error(exc)
        return JSONResponse({"is_finished": not job.active})

    @router.get(
        "/download",
        summary="Download the clip",
        responses={**_ERROR, 200: {"content": {"video/mp4": {}}}},
    )
    async def download(video_file: Annotated[str | None, Query()] = None) -> Response:
        """The clip as `video/mp4`; a failed job's error as code 200."""
        try:
            if video_file is None:
                raise ClassicError(CODE_ARGUMENT, "Missing argument: 'video_file'")
            job = await find(video_file)
            if job.state in ("failed", "canceled"):
                why = job.error_message or job.state
                raise ClassicError(CODE_VIDEO, f"Video could not be made: {video_file}: {why}")
            if job.state != "succeeded" or job.result_key is None or job.result_size is None:
                raise ClassicError(CODE_VIDEO, f"Video does not exist: {video_file}")
            try:
                reader = await runtime.require().open_result(job, 0, job.result_size)
            except BlobNotFoundError:  # expired between the lookup and the read
                raise ClassicError(CODE_VIDEO, f"Video does not exist: {video_file}") from None
        except ClassicError as exc:
            return _error(exc)
        headers = {
            "Content-Length": str(job.result_size),
            "Content-Disposition": content_disposition(video_file),
            "ETag": f'"{job.result_sha256}"',
        }
        return StreamingResponse(_read(reader), media_type="video/mp4", headers=headers)

    return router
