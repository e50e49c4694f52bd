"""HTTP routes of the media service: ``/v1/media/...`` (tag ``media``). API: ``docs/media.md``.

Authentication is the relay's (bearer tokens of :mod:`wirelab.auth`); a job is visible to
its owner only (404 to everyone else). Downloads reuse the relay's ``Range`` handling.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..db import JOB_STATES, MediaJob
from ..relay import (
    REDIRECT_ANSWER,
    REDIRECT_TTL,
    Auth,
    RedirectQuery,
    content_disposition,
    http_error,
    range_answer,
    redirect_to,
)
from ..storage import BlobReader
from ._errors import MediaError
from ._request import ClipRequest
from ._service import LIST_MAX, WAIT_MAX, MediaService

__all__ = ["MediaRuntime", "build_router", "job_json"]

IDEMPOTENCY_KEY_MAX = 255
_MEDIA_TYPES = {
    "mp4": "video/mp4",
    "mkv": "video/x-matroska",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
}
# DELETE of an active job waits this long for it to end, so the answer is usually final.
CANCEL_WAIT = 10.0


class MediaRuntime:
    """Holds the service once the app's lifespan has started it."""

    def __init__(self) -> None:
        self.service: MediaService | None = None

    def require(self) -> MediaService:
        if self.service is None:
            raise HTTPException(503, "the media service is not started")
        return self.service


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _number(text: str | None) -> float | None:
    return None if text is None else float(Decimal(text))


def job_json(job: MediaJob) -> dict[str, Any]:
    """The JSON document of a job (``GET /v1/media/jobs/{id}``)."""
    url = f"/v1/media/jobs/{job.id}"
    result = None
    if job.state == "succeeded" and job.result_key is not None:
        result = {
            "url": f"{url}/result",
            "name": job.result_name,
            "size": job.result_size,
            "sha256": job.result_sha256,
            "duration": _number(job.result_duration),
            "start": _number(job.result_start),
            "expires_at": _iso(job.expires_at),
        }
    error = None
    if job.error_message is not None:
        error = {"message": job.error_message, "retryable": bool(job.error_retryable)}
    return {
        "id": job.id,
        "url": url,
        "state": job.state,
        "progress": round(job.progress, 1),
        "phase": job.phase,
        "error": error,
        "cancel_requested": job.cancel_requested,
        "attempts": job.attempts,
        "request": ClipRequest.from_json(json.loads(job.request)).to_json(),
        "result": result,
        "expires_at": _iso(job.expires_at) if result is not None else None,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token (with `WWW-Authenticate`)."},
}
_JOB: dict[int | str, dict[str, Any]] = {**_AUTH, 404: {"description": "No such job of yours."}}


def build_router(runtime: MediaRuntime) -> APIRouter:
    """The media routes; the service is looked up in ``runtime`` per request."""
    router = APIRouter(prefix="/v1/media", tags=["media"])

    @router.post(
        "/jobs",
        status_code=202,
        summary="Order a clip",
        responses={
            **_AUTH,
            200: {"description": "An equivalent job exists (same Idempotency-Key, or the "
                  "same request while it is active or has its result): that job."},
            422: {"description": "Invalid request, refused source or over a limit."},
            429: {"description": "You have the most queued and running jobs allowed."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "source": {"type": "string", "description": "http(s) URL of the media."},
                    "video_id": {"type": "string", "description": "Id expanded through the "
                                 "server's --media-source-template (instead of source)."},
                    "start": {"type": "string", "description": "HH:MM:SS[.fff], MM:SS or s."},
                    "end": {"type": "string", "description": "HH:MM:SS[.fff], MM:SS or s."},
                    "accuracy": {"enum": ["fast", "exact", "smart"], "default": "exact"},
                    "container": {"enum": ["mp4", "mkv", "m4a", "mp3"], "default": "mp4"},
                }}}},
            }
        },
    )  # fmt: skip
    async def submit(
        request: Request,
        user: Auth,
        idempotency_key: Annotated[
            str | None, Header(description="Makes retries of this POST safe.")
        ] = None,
    ) -> Response:
        """Queue a clip job; answers 202 with the job and its `Location`."""
        service = runtime.require()
        if idempotency_key is not None and not (
            0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX
            and all(" " <= c <= "~" for c in idempotency_key)
        ):
            raise HTTPException(422, "Idempotency-Key must be 1-255 printable ASCII characters")
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise HTTPException(422, f"the body is not valid JSON: {exc}") from None
        try:
            job, created = await service.submit(user.name, body, idempotency_key)
        except MediaError as exc:
            raise http_error(exc) from None
        doc = job_json(job)
        return JSONResponse(
            doc, status_code=202 if created else 200, headers={"Location": doc["url"]}
        )

    @router.get("/jobs", summary="List your jobs", responses=_AUTH)
    async def jobs(
        user: Auth,
        state: Annotated[str | None, Query(description="Only jobs in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 100,
    ) -> Any:
        """Your jobs, newest first."""
        if state is not None and state not in JOB_STATES:
            raise HTTPException(422, f"state must be one of {', '.join(JOB_STATES)}")
        found = await runtime.require().jobs(user.name, state, limit)
        return {"jobs": [job_json(job) for job in found]}

    async def _job(user_name: str, job_id: str) -> MediaJob:
        try:
            return await runtime.require().get(user_name, job_id)
        except MediaError as exc:
            raise http_error(exc) from None

    @router.get("/jobs/{job_id}", summary="A job's state and progress", responses=_JOB)
    async def job(
        user: Auth,
        job_id: str,
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=WAIT_MAX,
                allow_inf_nan=False,
                description="Long poll: answer as soon as the job's state, phase or "
                "progress changes or it is final, or after this many seconds "
                f"(0-{WAIT_MAX:g}; 0, the default: at once).",
            ),
        ] = 0.0,
    ) -> Any:
        """State, progress (0-100), phase, error and, once succeeded, the result."""
        try:
            return job_json(await runtime.require().watch(user.name, job_id, wait))
        except MediaError as exc:
            raise http_error(exc) from None

    @router.delete(
        "/jobs/{job_id}",
        summary="Cancel a job, or delete a finished one",
        responses={
            **_JOB,
            200: {"description": "The job was active and is now canceled."},
            202: {"description": "Cancel requested; the job is still stopping."},
            204: {"description": "The finished job and its result were deleted."},
        },
    )
    async def cancel(user: Auth, job_id: str) -> Response:
        """Cancel a queued or running job (ffmpeg is interrupted, partial files
        removed); on a finished job, delete it and its result."""
        try:
            found = await runtime.require().cancel(user.name, job_id, wait=CANCEL_WAIT)
        except MediaError as exc:
            raise http_error(exc) from None
        if found is None:
            return Response(status_code=204)
        return JSONResponse(job_json(found), status_code=202 if found.active else 200)

    download_responses: dict[int | str, dict[str, Any]] = {
        **_JOB,
        200: {"description": "The clip.", "content": {"video/mp4": {}}},
        206: {"description": "The requested byte range."},
        409: {"description": "The job has no result (yet): see its state."},
        410: {"description": "The result expired and was deleted."},
        416: {"description": "The range is outside the file."},
    }

    async def _answer(
        request: Request, user_name: str, job_id: str
    ) -> tuple[MediaJob, int, Any, dict[str, str]]:
        found = await _job(user_name, job_id)
        if found.state != "succeeded":
            raise HTTPException(409, f"the job is {found.state}: it has no result")
        if found.result_key is None or found.result_size is None:
            raise HTTPException(410, "the result expired and was deleted")
        etag = f'"{found.result_sha256}"'
        status, selected, headers = range_answer(
            request.headers.get("range"), request.headers.get("if-range"), found.result_size, etag
        )
        container = ClipRequest.from_json(json.loads(found.request)).container
        headers.update({
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Content-Disposition": content_disposition(found.result_name or "clip"),
            "Content-Type": _MEDIA_TYPES[container],
            "Cache-Control": "private, no-store",
            "Wirelab-Sha256": found.result_sha256 or "",
        })  # fmt: skip
        return found, status, selected, headers

    @router.get(
        "/jobs/{job_id}/result",
        summary="Download the clip",
        responses={**download_responses, **REDIRECT_ANSWER},
    )
    async def result(
        request: Request, user: Auth, job_id: str, redirect: RedirectQuery = False
    ) -> Response:
        """The clip, with `ETag` (its SHA-256), `Range` and `Content-Disposition`. With
        `redirect=1` and S3 storage: a 307 to a presigned URL of the clip instead."""
        found, status, selected, headers = await _answer(request, user.name, job_id)
        if status == 416:
            return Response(status_code=416, headers=headers)
        if redirect and found.result_key is not None:
            location = await runtime.require().blobs.presigned_url(
                found.result_key,
                REDIRECT_TTL,
                disposition=headers["Content-Disposition"],
                media_type=headers["Content-Type"],
            )
            if location is not None:
                return redirect_to(location)
        assert found.result_size is not None
        start, end = (0, found.result_size) if selected is None else (selected.start, selected.end)
        reader = await runtime.require().open_result(found, start, end)
        return StreamingResponse(_read(reader), status_code=status, headers=headers)

    @router.head(
        "/jobs/{job_id}/result", summary="The clip's headers", responses=download_responses
    )
    async def result_head(request: Request, user: Auth, job_id: str) -> Response:
        """The headers `GET` would answer with, without the body."""
        _, status, _, headers = await _answer(request, user.name, job_id)
        return Response(status_code=status, headers=headers)

    return router


async def _read(reader: BlobReader) -> AsyncIterator[bytes]:
    async with reader:
        async for chunk in reader:
            yield chunk
