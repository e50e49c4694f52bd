"""The tus 1.0.0 routes of the relay: ``/v1/relay/uploads`` (API: ``docs/relay.md``).

Core protocol plus the creation, checksum, expiration and termination extensions.
Every request except ``OPTIONS`` must carry ``Tus-Resumable: 1.0.0`` (else 412) and
every answer carries it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from ..db import RelayUpload, User
from ..storage import DigestMismatchError, OffsetMismatchError
from ._errors import RelayError
from ._routes import NOTE_MAX, SHA256_RE, RelayRuntime, clean_note, current_user, valid_media_type
from ._routes import build_router as build_base_router
from ._uploads import UploadRequest, checksum

__all__ = ["TUS_VERSION", "add_tus_routes", "build_router", "parse_metadata"]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,expiration,termination"
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
#: A PATCH with ``Upload-Checksum`` is held in memory to be verified before it is stored.
CHECKSUM_MAX_CHUNK = 64 * 1024 * 1024
_OFFSET_TYPE = "application/offset+octet-stream"


class TusError(Exception):
    """An answer other than success; turned into a response carrying the tus headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def parse_metadata(header: str | None) -> dict[str, str]:
    """Parse ``Upload-Metadata``: comma-separated ``key base64value`` (value optional).

    An empty or absent header is no metadata. Raises :class:`ValueError` when malformed.
    """
    result: dict[str, str] = {}
    for item in (header or "").split(","):
        parts = item.strip().split(" ")
        if parts == [""]:
            continue
        if len(parts) > 2 or not parts[0]:
            raise ValueError(f"malformed Upload-Metadata pair {item.strip()!r}")
        value = ""
        if len(parts) == 2:
            try:
                value = base64.b64decode(parts[1], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(
                    f"Upload-Metadata value of {parts[0]!r} is not base64 UTF-8"
                ) from None
        if parts[0] in result:
            raise ValueError(f"duplicate Upload-Metadata key {parts[0]!r}")
        result[parts[0]] = value
    return result


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _answer(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, headers={"Tus-Resumable": TUS_VERSION, **(headers or {})})


def _fail(exc: TusError) -> Response:
    return JSONResponse(
        {"detail": exc.detail},
        status_code=exc.status,
        headers={"Tus-Resumable": TUS_VERSION, **exc.headers},
    )


async def _tus_user(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    tus_resumable: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> User:
    """The authenticated caller of a tus request (401, 412 with the tus headers)."""
    headers = {"Tus-Resumable": TUS_VERSION}
    if request.method != "OPTIONS" and tus_resumable != TUS_VERSION:
        raise HTTPException(
            412, f"Tus-Resumable must be {TUS_VERSION}", {**headers, "Tus-Version": TUS_VERSION}
        )
    try:
        return await current_user(request, authorization)
    except HTTPException as exc:
        raise HTTPException(
            exc.status_code, exc.detail, {**(exc.headers or {}), **headers}
        ) from None


TusUser = Annotated[User, Depends(_tus_user)]


def _required(meta: dict[str, str], key: str) -> str:
    value = meta.get(key, "").strip()
    if not value:
        raise TusError(400, f"Upload-Metadata needs a non-empty {key!r}")
    return value


def _request(user: User, meta: dict[str, str], length: int) -> UploadRequest:
    sha256 = _required(meta, "sha256")
    if SHA256_RE.fullmatch(sha256) is None:
        raise TusError(400, "Upload-Metadata 'sha256' must be 64 hexadecimal digits")
    media_type = (meta.get("filetype") or meta.get("content_type") or "").strip()
    media_type = media_type or "application/octet-stream"
    if not valid_media_type(media_type):
        raise TusError(400, "Upload-Metadata 'filetype' is not a valid media type")
    note = meta.get("note")
    if note is not None:
        note = clean_note(note)[:NOTE_MAX]
    return UploadRequest(
        owner=user.name,
        recipient=_required(meta, "to"),
        name=_required(meta, "filename"),
        media_type=media_type,
        sha256=sha256.lower(),
        length=length,
        note=note or None,
    )


def _parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    if header is None:
        return None
    parts = header.strip().split(" ")
    if len(parts) != 2:
        raise TusError(400, "Upload-Checksum must be 'ALGORITHM BASE64DIGEST'")
    if parts[0] not in CHECKSUM_ALGORITHMS:
        raise TusError(400, f"unsupported checksum algorithm {parts[0]!r}")
    try:
        return parts[0], base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise TusError(400, "Upload-Checksum digest is not base64") from None


async def _checked(request: Request, algorithm: str, digest: bytes) -> AsyncIterator[bytes]:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > CHECKSUM_MAX_CHUNK:
            raise TusError(413, f"a checksummed PATCH may carry {CHECKSUM_MAX_CHUNK} bytes")
    body = bytes(data)
    if checksum(algorithm, body) != digest:
        raise TusError(460, "Upload-Checksum mismatch: the chunk was not stored")

    async def once() -> AsyncIterator[bytes]:
        yield body

    return once()


def add_tus_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add the tus routes to the relay's ``router`` (prefix ``/v1/relay``)."""

    @router.options("/uploads", summary="tus discovery", status_code=204)
    async def options(user: TusUser) -> Response:
        """`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`."""
        return _answer(
            204,
            {
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(runtime.require().limits.max_file_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            },
        )

    @router.post("/uploads", summary="tus: create an upload", status_code=201)
    async def create(
        user: TusUser,
        upload_length: Annotated[str | None, Header(include_in_schema=False)] = None,
        upload_metadata: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Create an upload (`Upload-Length`, `Upload-Metadata`); `Location` names it."""
        try:
            if upload_length is None or not upload_length.isdigit():
                raise TusError(400, "Upload-Length must be a non-negative integer")
            try:
                meta = parse_metadata(upload_metadata)
            except ValueError as exc:
                raise TusError(400, str(exc)) from None
            req = _request(user, meta, int(upload_length))
            try:
                upload = await runtime.require().uploads.create(req)
            except RelayError as exc:
                raise TusError(exc.status_code, str(exc)) from None
        except TusError as exc:
            return _fail(exc)
        return _answer(
            201,
            {
                "Location": f"/v1/relay/uploads/{upload.id}",
                "Upload-Expires": _http_date(upload.expires_at),
                "Upload-Offset": "0",
            },
        )

    async def lookup(user: User, upload_id: str) -> tuple[RelayUpload, int]:
        try:
            return await runtime.require().uploads.get(user.name, upload_id)
        except RelayError as exc:
            raise TusError(exc.status_code, str(exc)) from None

    @router.head("/uploads/{upload_id}", summary="tus: upload offset")
    async def head(user: TusUser, upload_id: str) -> Response:
        """`Upload-Offset` (durable), `Upload-Length`, `Upload-Expires`."""
        try:
            upload, offset = await lookup(user, upload_id)
        except TusError as exc:
            return _answer(exc.status)
        return _answer(
            200,
            {
                "Upload-Offset": str(offset),
                "Upload-Length": str(upload.length),
                "Upload-Expires": _http_date(upload.expires_at),
                "Cache-Control": "no-store",
            },
        )

    @router.patch("/uploads/{upload_id}", summary="tus: append bytes", status_code=204)
    async def patch(
        request: Request,
        user: TusUser,
        upload_id: str,
        content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
        upload_offset: Annotated[str | None, Header(include_in_schema=False)] = None,
        upload_checksum: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Append the body at `Upload-Offset`; the last byte completes the file."""
        uploads = runtime.require().uploads
        try:
            if (content_type or "").split(";")[0].strip().lower() != _OFFSET_TYPE:
                raise TusError(415, f"Content-Type must be {_OFFSET_TYPE}")
            if upload_offset is None or not upload_offset.isdigit():
                raise TusError(400, "Upload-Offset must be a non-negative integer")
            wanted = _parse_checksum(upload_checksum)
            upload, offset = await lookup(user, upload_id)
            if int(upload_offset) != offset:
                raise TusError(409, f"Upload-Offset is {offset}", {"Upload-Offset": str(offset)})
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and offset + int(length) > upload.length:
                raise TusError(413, "the body goes past Upload-Length")
            body = request.stream() if wanted is None else await _checked(request, *wanted)
            try:
                offset = await uploads.append(upload, offset, body)
            except OffsetMismatchError as exc:
                raise TusError(409, str(exc), {"Upload-Offset": str(exc.expected)}) from None
            except RelayError as exc:
                raise TusError(exc.status_code, str(exc)) from None
            headers = {
                "Upload-Offset": str(offset),
                "Upload-Expires": _http_date(upload.expires_at),
            }
            if offset == upload.length:
                try:
                    file = await uploads.complete(upload)
                except DigestMismatchError as exc:
                    raise TusError(
                        422,
                        f"SHA-256 mismatch: the upload hashes to {exc.actual}, its 'sha256'"
                        f" metadata says {exc.expected}; the upload was deleted",
                    ) from None
                except RelayError as exc:
                    raise TusError(exc.status_code, str(exc)) from None
                headers["Wirelab-File-Url"] = f"/v1/relay/files/{file.id}"
        except TusError as exc:
            return _fail(exc)
        except ClientDisconnect:
            return _answer(400)
        return _answer(204, headers)

    @router.delete("/uploads/{upload_id}", summary="tus: terminate", status_code=204)
    async def terminate(user: TusUser, upload_id: str) -> Response:
        """Delete the upload and its bytes."""
        try:
            upload, _ = await lookup(user, upload_id)
            await runtime.require().uploads.terminate(upload)
        except TusError as exc:
            return _fail(exc)
        return _answer(204)


def build_router(runtime: RelayRuntime) -> APIRouter:
    """All relay routes: the files and inbox routes plus the tus uploads."""
    router = build_base_router(runtime)
    add_tus_routes(router, runtime)
    return router
