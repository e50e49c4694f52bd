"""HTTP routes of the relay: ``/v1/relay/...`` (tag ``relay``). API: ``docs/relay.md``."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response, StreamingResponse

from .._digests import DIGEST_LABELS, digest_etag
from .._exceptions import UsageError
from .._validate import INT64_MAX
from ..auth import AuthenticationError, InvalidCredentials, parse_bearer
from ..db import RelayFile, RelayUpload, User
from ..storage import BlobReader, DigestMismatchError
from ._digest_http import DigestSyntaxError, digest_headers, parse_hex, request_digest
from ._errors import RelayError
from ._http import ByteRange, RangeNotSatisfiable, content_disposition, parse_range, range_answer
from ._params import STRICT_FLOAT, STRICT_INT, StrictJSONRoute
from ._redirect import REDIRECT_ANSWER, REDIRECT_TTL, RedirectQuery, redirect_to
from ._responses import BEARER, RANGE_HEADERS, answers
from ._service import RelayService, SendRequest

__all__ = ["Auth", "RelayRuntime", "build_router", "current_user"]

_MEDIA_TYPE_RE = re.compile(r"[\x21-\x7e]+/[\x21-\x7e]+(\s*;[\x20-\x7e]*)?")
NOTE_MAX = 4096


def valid_media_type(media_type: str) -> bool:
    """Whether ``media_type`` is an acceptable ``type/subtype[; params]`` (255 chars max)."""
    return len(media_type) <= 255 and _MEDIA_TYPE_RE.fullmatch(media_type) is not None


ENCRYPTION_MAX = 2048


def valid_encryption(value: str) -> bool:
    """Whether ``value`` is an acceptable opaque encryption descriptor: printable ASCII
    (space to ``~``), at most :data:`ENCRYPTION_MAX` characters."""
    return len(value) <= ENCRYPTION_MAX and all(" " <= c <= "~" for c in value)


def clean_note(note: str) -> str:
    """``note`` without its non-printable characters (newlines and tabs are kept)."""
    return "".join(c for c in note if c.isprintable() or c in "\n\t")


class RelayRuntime:
    """Holds the service once the app's lifespan has opened the db and the blob store."""

    def __init__(self) -> None:
        self.service: RelayService | None = None

    def require(self) -> RelayService:
        if self.service is None:
            raise HTTPException(503, "the relay is not started")
        return self.service


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def file_json(file: RelayFile) -> dict[str, Any]:
    """The JSON document of a file, as listed and returned by send and next."""
    return {
        "id": file.id,
        "sender": file.sender,
        "recipient": file.recipient,
        "name": file.name,
        "media_type": file.media_type,
        "size": file.size,
        "digest_algorithm": file.digest_algorithm,
        "digest": file.sha256,
        "sha256": file.sha256 if file.digest_algorithm == "sha256" else None,
        "note": file.note,
        "created_at": _iso(file.created_at),
        "expires_at": _iso(file.expires_at),
        "deliveries": file.deliveries,
        "downloads": file.downloads,
        "max_downloads": file.max_downloads,
        "batch": None
        if file.batch_id is None
        else {"id": file.batch_id, "index": file.batch_index, "count": file.batch_count},
        "encryption": file.encryption,
        "url": f"/v1/relay/files/{file.id}",
    }


def _invalid(where: str, name: str, msg: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": [where, name], "msg": msg, "input": None}]
    )


def http_error(exc: UsageError) -> HTTPException:
    """A service error (relay or media) as the HTTP answer its class names.

    Every service error class carries ``status_code``; one without it is a 400.
    """
    return HTTPException(getattr(exc, "status_code", 400), str(exc))


def _unauthorized(exc: AuthenticationError) -> HTTPException:
    return HTTPException(401, str(exc), headers={"WWW-Authenticate": exc.www_authenticate})


_AUTH_RESPONSES = answers()


async def current_user(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> User:
    """The user whose bearer token the request carries; 401 otherwise.

    ``_scheme`` only declares the ``bearer`` security scheme in the OpenAPI document (so
    ``/docs`` can authorize); ``parse_bearer`` checks the header and says what is wrong.

    The app stores the :class:`RelayRuntime` as ``app.state.relay_runtime``.
    """
    runtime: RelayRuntime = request.app.state.relay_runtime
    service = runtime.require()
    try:
        token = parse_bearer(authorization)
    except AuthenticationError as exc:
        raise _unauthorized(exc) from None
    user = await service.db.users.get_user_by_token(token)
    if user is None:
        raise _unauthorized(InvalidCredentials("unknown or revoked API token"))
    return user


Auth = Annotated[User, Depends(current_user)]


def build_router(runtime: RelayRuntime) -> APIRouter:
    """The relay's routes; the service is looked up in ``runtime`` per request."""
    router = APIRouter(prefix="/v1/relay", tags=["relay"], route_class=StrictJSONRoute)

    @router.post(
        "/files",
        status_code=201,
        summary="Send a file to a user",
        responses={
            **answers(400, 404, 413, 429, 507, _404="No user with the recipient's name."),
            422: {"description": "Invalid parameter, or the SHA-256 does not match."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The raw file bytes (streamed; Content-Length optional).",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def send(
        request: Request,
        user: Auth,
        to: Annotated[str, Query(description="Recipient's user name.")],
        name: Annotated[str, Query(description="File name (sanitized by the server).")],
        wirelab_sha256: Annotated[
            str | None,
            Header(description="SHA-256 of the body, 64 hex digits (or `Wirelab-Digest`)."),
        ] = None,
        wirelab_digest: Annotated[
            str | None,
            Header(description="`blake3=HEX` or `sha256=HEX`: the body's digest."),
        ] = None,
        note: Annotated[
            str | None, Query(max_length=NOTE_MAX, description="Free text for the recipient.")
        ] = None,
        ttl: Annotated[
            float | None,
            STRICT_FLOAT,
            Query(gt=0, description="Seconds until the file expires."),
        ] = None,
        max_downloads: Annotated[
            int | None,
            STRICT_INT,
            Query(ge=1, le=INT64_MAX, description="Downloads allowed (default: unlimited)."),
        ] = None,
        encryption: Annotated[
            str | None, Query(description="Opaque encryption descriptor (printable ASCII).")
        ] = None,
        content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
        content_length: Annotated[
            int | None, STRICT_INT, Header(include_in_schema=False, ge=0)
        ] = None,
    ) -> Any:
        """Upload the request body as a file for user `to`.

        The file becomes visible in the recipient's inbox only once fully received,
        verified against `Wirelab-Digest` (or `Wirelab-Sha256`) and flushed to disk.
        """
        service = runtime.require()
        try:
            announced = request_digest(wirelab_digest, wirelab_sha256)
        except DigestSyntaxError as exc:
            raise _invalid("header", "wirelab-digest", str(exc)) from None
        if announced is None:
            raise _invalid("header", "wirelab-digest", "Wirelab-Digest or Wirelab-Sha256 needed")
        algorithm, digest = announced
        if ttl is not None and ttl > service.limits.max_ttl:
            raise _invalid("query", "ttl", f"must be at most {service.limits.max_ttl:g} seconds")
        media_type = (content_type or "").strip() or "application/octet-stream"
        if not valid_media_type(media_type):
            raise _invalid("header", "content-type", "not a valid media type")
        if note is not None:
            note = clean_note(note)
        if encryption is not None and not valid_encryption(encryption):
            raise _invalid("query", "encryption", "must be printable ASCII, at most 2048 chars")
        req = SendRequest(
            sender=user.name,
            recipient=to,
            name=name,
            media_type=media_type,
            sha256=digest,
            digest_algorithm=algorithm,
            note=note,
            ttl=ttl,
            content_length=content_length,
            max_downloads=max_downloads,
            encryption=encryption,
        )
        try:
            file = await service.send(req, request.stream())
        except RelayError as exc:
            raise http_error(exc) from None
        except DigestMismatchError as exc:
            raise HTTPException(
                422,
                f"{DIGEST_LABELS[algorithm]} mismatch: the body hashes to {exc.actual}, "
                f"the announced digest is {exc.expected}; nothing was stored",
            ) from None
        except ClientDisconnect:
            return Response(status_code=400)
        doc = file_json(file)
        return JSONResponse(doc, status_code=201, headers={"Location": doc["url"]})

    @router.get("/inbox", summary="List your inbox", responses=_AUTH_RESPONSES)
    async def inbox(user: Auth) -> Any:
        """Your unexpired files, oldest first (the order `next` delivers them in)."""
        files = await runtime.require().inbox(user.name)
        return {"files": [file_json(f) for f in files]}

    @router.post(
        "/inbox/next",
        summary="Lease the oldest file",
        responses={
            **answers(507),
            204: {"description": "No file became available within `wait` seconds."},
        },
    )
    async def next_file(
        user: Auth,
        lease: Annotated[
            float | None,
            STRICT_FLOAT,
            Query(gt=0, description="Lease (visibility timeout), seconds."),
        ] = None,
        wait: Annotated[
            float, STRICT_FLOAT, Query(ge=0, description="Long-poll up to this long.")
        ] = 0,
        live: Annotated[
            bool, Query(description="Also offer an upload in progress (live pass-through).")
        ] = False,
    ) -> Any:
        """Lease the oldest file that is not leased; it is offered again when the lease
        ends without an acknowledgement (`DELETE /v1/relay/files/{id}`)."""
        service = runtime.require()
        limits = service.limits
        if lease is None:
            lease = limits.default_lease
        if lease > limits.max_lease:
            raise _invalid("query", "lease", f"must be at most {limits.max_lease:g} seconds")
        if wait > limits.max_wait:
            raise _invalid("query", "wait", f"must be at most {limits.max_wait:g} seconds")
        # A store that cannot read unfinished uploads (S3) offers no upload live: the
        # receiver gets the file once stored, as without live=true.
        live = live and service.blobs.live_reads
        file = await service.next(user.name, lease, wait, live=live)
        if file is None:
            return Response(status_code=204)
        if isinstance(file, RelayUpload):
            from ._live import live_json  # the live module imports this one

            return live_json(file)
        doc = file_json(file)
        doc["lease"] = {"id": file.lease_id, "expires_at": _iso(file.lease_until or 0.0)}
        return doc

    def _headers(file: RelayFile) -> dict[str, str]:
        return {
            **digest_headers(file.digest_algorithm, file.sha256),
            "Accept-Ranges": "bytes",
            "Content-Disposition": content_disposition(file.name),
            "Content-Type": file.media_type,
            "Cache-Control": "private, no-store",
        }

    async def _lookup(user: User, file_id: str) -> RelayFile:
        """The caller's file, downloadable: 404, or 410 once its download limit is reached."""
        try:
            file = await runtime.require().get(user.name, file_id)
        except RelayError as exc:
            raise http_error(exc) from None
        if file.exhausted:
            raise HTTPException(410, "download limit reached")
        return file

    def _range_answer(
        file: RelayFile, request: Request
    ) -> tuple[int, ByteRange | None, dict[str, str]]:
        """Status (200, 206 or 416), selected range (206 only) and headers of the answer."""
        status, selected, extra = range_answer(
            request.headers.get("range"),
            request.headers.get("if-range"),
            file.size,
            digest_etag(file.digest_algorithm, file.sha256),
        )
        return status, selected, {**_headers(file), **extra}

    def _unsatisfiable(file: RelayFile, request: Request, headers: dict[str, str]) -> Response:
        """The 416 answer of a ``GET``: a JSON ``detail`` naming the ``Range`` problem."""
        try:
            parse_range(request.headers.get("range"), file.size)
            detail = "Range: not satisfiable"  # pragma: no cover - a 416 always raises
        except RangeNotSatisfiable as exc:
            detail = str(exc)
        kept = ("Content-Range", "Accept-Ranges", "ETag", "Cache-Control")
        return JSONResponse(
            {"detail": detail}, status_code=416, headers={k: headers[k] for k in kept}
        )

    download_responses: dict[int | str, dict[str, Any]] = {
        **answers(404, 410, 416, _404="No such file in your inbox.",
                  _410="The file's download limit is reached."),
        200: {"description": "The file.", "content": {"application/octet-stream": {}}},
        206: {"description": "The requested byte range."},
    }  # fmt: skip
    range_doc = {"parameters": RANGE_HEADERS}

    @router.get("/files/{file_id}", summary="Download a file",
                responses={**download_responses, **REDIRECT_ANSWER},
                openapi_extra=range_doc)  # fmt: skip
    async def download(
        request: Request, user: Auth, file_id: str, redirect: RedirectQuery = False
    ) -> Response:
        """The file's bytes, with `ETag` (its digest) and `Range` support (one range).
        With `redirect=1` and S3 storage: a 307 to a presigned URL of the bytes instead."""
        file = await _lookup(user, file_id)
        status, selected, headers = _range_answer(file, request)
        if status == 416:
            return _unsatisfiable(file, request, headers)
        start, end = (0, file.size) if selected is None else (selected.start, selected.end)
        service = runtime.require()
        if redirect and not file.inline:  # inline bytes have no URL: streamed below
            location = await service.blobs.presigned_url(
                file.blob_key,
                REDIRECT_TTL,
                disposition=headers["Content-Disposition"],
                media_type=file.media_type,
            )
            if location is not None:  # counted as a download once redirected to the end
                if end == file.size:
                    await service.count_download(file)
                return redirect_to(location)
        reader = await service.open(file, start, end)
        # Counted once the last byte was handed to the server (a range reaching the end too).
        done = functools.partial(service.count_download, file) if end == file.size else None
        return StreamingResponse(_read(reader, done), status_code=status, headers=headers)

    @router.head("/files/{file_id}", summary="File headers", responses=download_responses,
                 openapi_extra=range_doc)  # fmt: skip
    async def head(request: Request, user: Auth, file_id: str) -> Response:
        """The headers `GET` would answer with, without the body."""
        file = await _lookup(user, file_id)
        status, _, headers = _range_answer(file, request)
        return Response(status_code=status, headers=headers)

    @router.delete(
        "/files/{file_id}",
        status_code=204,
        summary="Acknowledge (delete) a file",
        responses=answers(404, 507, _404="No such file in your inbox."),
    )
    async def ack(user: Auth, file_id: str) -> Response:
        """Delete the file from your inbox, after you verified your copy."""
        try:
            await runtime.require().ack(user.name, file_id)
        except RelayError as exc:
            raise http_error(exc) from None
        return Response(status_code=204)

    @router.delete(
        "/files/{file_id}/lease",
        status_code=204,
        summary="Release a lease (give a file back)",
        responses=answers(404, _404="No such file in your inbox."),
    )
    async def release(
        user: Auth,
        file_id: str,
        lease_id: Annotated[
            str | None, Query(max_length=64, description="Release only this lease.")
        ] = None,
    ) -> Response:
        """End the lease on a file of your inbox at once, so that the next `next` offers
        it again (a receiver that could not store the file gives it back)."""
        try:
            await runtime.require().release(user.name, file_id, lease_id)
        except RelayError as exc:
            raise http_error(exc) from None
        return Response(status_code=204)

    @router.get(
        "/sent",
        summary="Your files still queued for a recipient",
        responses=_AUTH_RESPONSES,
    )
    async def sent(
        user: Auth,
        to: Annotated[str, Query(max_length=64, description="Recipient's user name.")],
        sha256: Annotated[
            str | None, Query(description="Content's SHA-256, 64 hex digits.")
        ] = None,
        blake3: Annotated[str | None, Query(description="Content's BLAKE3, 64 hex digits.")] = None,
    ) -> Any:
        """The files you sent to `to` with this content (give `sha256` or `blake3`) that
        are still in their inbox (not yet acknowledged): a client checks this to avoid
        delivering a copy twice."""
        given = [(name, v) for name, v in (("sha256", sha256), ("blake3", blake3)) if v]
        if len(given) != 1:
            raise _invalid("query", "sha256", "give exactly one of 'sha256' and 'blake3'")
        algorithm, value = given[0]
        try:
            digest = parse_hex(value, algorithm)
        except DigestSyntaxError as exc:
            raise _invalid("query", algorithm, str(exc)) from None
        files = await runtime.require().queued(user.name, to, digest, algorithm)
        return {"files": [file_json(f) for f in files]}

    @router.get("/me", summary="Who you are", responses=_AUTH_RESPONSES)
    async def me(user: Auth) -> Any:
        """The user the token belongs to, and its inbox quotas (its own or the server's)."""
        quota = runtime.require().quota
        return {
            "name": user.name,
            "created_at": user.created_at.isoformat(),
            "quota_bytes": quota.bytes if user.quota_bytes is None else user.quota_bytes,
            "quota_files": quota.files if user.quota_files is None else user.quota_files,
        }

    return router


async def _read(
    reader: BlobReader, done: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[bytes]:
    """The reader's chunks; then ``done()``, which runs only when the response's sender
    asks for more after the last chunk was sent (not when the client went away)."""
    async with reader:
        async for chunk in reader:
            yield chunk
    if done is not None:
        await done()
