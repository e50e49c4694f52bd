"""The tus 1.0.0 routes of the relay: ``/v1/relay/uploads`` (API: ``docs/relay.md``).

Core protocol plus the creation, checksum, expiration and termination extensions.
Every request except ``OPTIONS`` must carry ``Tus-Resumable: 1.0.0`` (else 412) and
every answer carries it.
"""

from __future__ import annotations

import base64
import binascii
from email.utils import formatdate
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from .._digests import DIGEST_LABELS
from .._validate import InvalidField, parse_int
from ..db import RelayUpload, User
from ..storage import ChecksumMismatchError, DigestMismatchError, OffsetMismatchError
from ._batch_routes import add_batch_routes
from ._digest_http import DigestSyntaxError, metadata_digest, request_digest
from ._errors import RelayError
from ._key_routes import add_key_routes
from ._live import add_live_routes
from ._pending import add_pending_routes
from ._responses import (
    BEARER,
    TUS_CREATE_HEADERS,
    TUS_PATCH_BODY,
    TUS_PATCH_HEADERS,
    TUS_RESUMABLE_HEADER,
    answers,
)
from ._routes import (
    NOTE_MAX,
    RelayRuntime,
    clean_note,
    current_user,
    valid_encryption,
    valid_media_type,
)
from ._routes import build_router as build_base_router
from ._uploads import UploadRequest, resolve_digest

__all__ = ["TUS_VERSION", "add_tus_routes", "build_router", "parse_metadata"]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,expiration,termination"
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
#: A PATCH with ``Upload-Checksum`` is held in memory to be verified before it is stored.
_OFFSET_TYPE = "application/offset+octet-stream"
_RESUMABLE = {"parameters": [TUS_RESUMABLE_HEADER]}


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
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> User:
    """The authenticated caller of a tus request (401, 412 with the tus headers).
    ``_scheme`` declares the ``bearer`` security scheme in the OpenAPI document."""
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


def _header_int(value: str | None, name: str, minimum: int = 0) -> int:
    """A numeric tus header by the strict grammar (ASCII digits, 64 bits); else 400."""
    if value is None:
        raise TusError(400, f"{name}: required (a non-negative integer)")
    try:
        return parse_int(value, ("header", name), minimum=minimum)
    except InvalidField as exc:
        raise TusError(400, str(exc)) from None


def _max_downloads(value: str | None) -> int | None:
    """The ``max_downloads`` metadata: a positive integer by the strict grammar; else 400."""
    if value is None:
        return None
    try:
        return parse_int(value, minimum=1)
    except InvalidField as exc:
        raise TusError(400, f"Upload-Metadata 'max_downloads' {exc.message}") from None


def _required(meta: dict[str, str], key: str) -> str:
    value = meta.get(key, "").strip()
    if not value:
        raise TusError(400, f"Upload-Metadata needs a non-empty {key!r}")
    return value


def _given_digest(upload: RelayUpload, wirelab_digest: str | None, wirelab_sha256: str | None
                  ) -> str | None:  # fmt: skip
    """The completing digest a PATCH announces, in the upload's algorithm; 400 if
    malformed, 422 if it names another algorithm."""
    try:
        given = request_digest(wirelab_digest, wirelab_sha256)
    except DigestSyntaxError as exc:
        raise TusError(400, str(exc)) from None
    if given is None:
        return None
    if given[0] != upload.digest_algorithm:
        raise TusError(422, f"this upload's digest is {upload.digest_algorithm}, not {given[0]}")
    return given[1]


def _request(user: User, meta: dict[str, str], length: int) -> UploadRequest:
    try:
        algorithm, sha256 = metadata_digest(dict(meta), "Upload-Metadata")
    except DigestSyntaxError as exc:
        raise TusError(400, str(exc)) from None
    media_type = (meta.get("filetype") or meta.get("content_type") or "").strip()
    media_type = media_type or "application/octet-stream"
    if not valid_media_type(media_type):
        raise TusError(400, "Upload-Metadata 'filetype' is not a valid media type")
    note = meta.get("note")
    if note is not None:
        note = clean_note(note)[:NOTE_MAX]
    encryption = meta.get("encryption")
    if encryption is not None and not valid_encryption(encryption):
        raise TusError(400, "Upload-Metadata 'encryption' must be printable ASCII, <= 2048 chars")
    return UploadRequest(
        owner=user.name,
        recipient=_required(meta, "to"),
        name=_required(meta, "filename"),
        media_type=media_type,
        sha256=sha256,
        digest_algorithm=algorithm,
        length=length,
        note=note or None,
        max_downloads=_max_downloads(meta.get("max_downloads")),
        encryption=encryption,
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


def _completed(upload: RelayUpload, given: str | None, body_length: int | None) -> Response:
    """The answer to a PATCH (at offset == length) of an upload whose bytes are all in and
    verified: 204 when it adds nothing (a retry after a lost answer), else 413 or 422.
    ``Wirelab-File-Url`` once the file is visible (a batch's: with its whole batch)."""
    if body_length:
        raise TusError(413, "the upload is complete: the body goes past Upload-Length")
    if given is not None and given != upload.sha256:
        raise TusError(
            422, f"the upload completed with {upload.digest_algorithm} {upload.sha256}, not {given}"
        )
    headers = {
        "Upload-Offset": str(upload.length),
        "Upload-Expires": _http_date(upload.expires_at),
    }
    if upload.complete:
        headers["Wirelab-File-Url"] = f"/v1/relay/files/{upload.id}"
    return _answer(204, headers)


def add_tus_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add the tus routes to the relay's ``router`` (prefix ``/v1/relay``)."""

    @router.options(
        "/uploads",
        summary="tus discovery",
        status_code=204,
        responses={503: {"description": "The relay is starting or stopping."}},
    )
    @router.options("/uploads/{upload_id}", include_in_schema=False, status_code=204)
    async def options() -> Response:
        """`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`.
        No token needed: it reveals only the server's tus settings (tus clients and
        browsers ask before they authenticate)."""
        return _answer(
            204,
            {
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(runtime.require().limits.max_file_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            },
        )

    @router.post(
        "/uploads",
        summary="tus: create an upload",
        status_code=201,
        responses=answers(400, 404, 412, 413, 422, 429, 507,
                          _404="No user with the recipient's name.",
                          _422="The `sha256` metadata contradicts the length."),
        openapi_extra={"parameters": TUS_CREATE_HEADERS},
    )  # fmt: skip
    async def create(
        user: TusUser,
        upload_length: Annotated[str | None, Header(include_in_schema=False)] = None,
        upload_metadata: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Create an upload (`Upload-Length`, `Upload-Metadata`); `Location` names it."""
        try:
            length = _header_int(upload_length, "Upload-Length")
            try:
                meta = parse_metadata(upload_metadata)
            except ValueError as exc:
                raise TusError(400, str(exc)) from None
            req = _request(user, meta, length)
            try:
                upload, file = await runtime.require().uploads.create(req)
            except RelayError as exc:
                raise TusError(exc.status_code, str(exc)) from None
        except TusError as exc:
            return _fail(exc)
        headers = {
            "Location": f"/v1/relay/uploads/{upload.id}",
            "Upload-Expires": _http_date(upload.expires_at),
            "Upload-Offset": "0",
        }
        if file is not None:  # a length-0 upload is complete at creation
            headers["Wirelab-File-Url"] = f"/v1/relay/files/{file.id}"
        return _answer(201, headers)

    async def lookup(user: User, upload_id: str) -> tuple[RelayUpload, int]:
        try:
            return await runtime.require().uploads.get(user.name, upload_id)
        except RelayError as exc:
            raise TusError(exc.status_code, str(exc)) from None

    @router.head("/uploads/{upload_id}", summary="tus: upload offset",
                 responses=answers(404, 410, 412), openapi_extra=_RESUMABLE)  # fmt: skip
    async def head(user: TusUser, upload_id: str) -> Response:
        """`Upload-Offset` (durable), `Upload-Length`, `Upload-Expires`."""
        try:
            upload, offset = await lookup(user, upload_id)
        except TusError as exc:
            return _answer(exc.status)
        headers = {
            "Upload-Offset": str(offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": _http_date(upload.expires_at),
            "Cache-Control": "no-store",
        }
        if upload.complete:
            headers["Wirelab-File-Url"] = f"/v1/relay/files/{upload.id}"
        return _answer(200, headers)

    @router.patch(
        "/uploads/{upload_id}",
        summary="tus: append bytes",
        status_code=204,
        responses=answers(400, 404, 409, 410, 412, 413, 415, 422, 423, 429, 460, 507,
                          _409="`Upload-Offset` is not the upload's offset (which the"
                          " answer's `Upload-Offset` gives).",
                          _422="SHA-256 mismatch: the upload was deleted."),
        openapi_extra={"parameters": TUS_PATCH_HEADERS, "requestBody": TUS_PATCH_BODY},
    )  # fmt: skip
    async def patch(
        request: Request,
        user: TusUser,
        upload_id: str,
        content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
        upload_offset: Annotated[str | None, Header(include_in_schema=False)] = None,
        upload_checksum: Annotated[str | None, Header(include_in_schema=False)] = None,
        wirelab_sha256: Annotated[str | None, Header(include_in_schema=False)] = None,
        wirelab_digest: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Append the body at `Upload-Offset`; the last byte completes the file, verified
        against the digest metadata or this PATCH's `Wirelab-Digest` (`Wirelab-Sha256`)
        when either was given (else the server computes the file's digest)."""
        try:
            if (content_type or "").split(";")[0].strip().lower() != _OFFSET_TYPE:
                raise TusError(415, f"Content-Type must be {_OFFSET_TYPE}")
            claimed = _header_int(upload_offset, "Upload-Offset")
            wanted = _parse_checksum(upload_checksum)
            upload, offset = await lookup(user, upload_id)
            given = _given_digest(upload, wirelab_digest, wirelab_sha256)
            if claimed != offset:
                raise TusError(409, f"Upload-Offset is {offset}", {"Upload-Offset": str(offset)})
            length = request.headers.get("content-length")
            body_length = None if length is None else _header_int(length, "Content-Length")
            if upload.received:
                return _completed(upload, given, body_length)
            headers = await _append(request, upload, offset, given, body_length, wanted)
        except TusError as exc:
            return _fail(exc)
        except ClientDisconnect:
            return _answer(400)
        return _answer(204, headers)

    async def _append(
        request: Request,
        upload: RelayUpload,
        offset: int,
        given: str | None,
        body_length: int | None,
        wanted: tuple[str, bytes] | None,
    ) -> dict[str, str]:
        """Append the body, complete the upload with its last byte; the answer's headers."""
        uploads = runtime.require().uploads
        try:
            digest = resolve_digest(upload.sha256, given)
        except RelayError as exc:
            raise TusError(exc.status_code, str(exc)) from None
        if body_length is not None and offset + body_length > upload.length:
            raise TusError(413, "the body goes past Upload-Length")
        try:
            # With Upload-Checksum the store streams the body to disk but records it as
            # durable only once the digest matched (memory stays bounded by its batches).
            offset = await uploads.append(upload, offset, request.stream(), checksum=wanted)
        except ChecksumMismatchError:
            raise TusError(460, "Upload-Checksum mismatch: the chunk was not stored") from None
        except OffsetMismatchError as exc:
            raise TusError(409, str(exc), {"Upload-Offset": str(exc.expected)}) from None
        except RelayError as exc:
            raise TusError(exc.status_code, str(exc)) from None
        headers = {"Upload-Offset": str(offset), "Upload-Expires": _http_date(upload.expires_at)}
        if offset < upload.length:
            return headers
        try:  # without any announced digest the server computes it (generic tus clients)
            file = await uploads.complete(upload, digest)
        except DigestMismatchError as exc:
            raise TusError(
                422,
                f"{DIGEST_LABELS[exc.algorithm]} mismatch: the upload hashes to {exc.actual},"
                f" the announced digest is {exc.expected}; the upload was deleted"
                + ("" if upload.batch_id is None else " (a batch's upload: reset to offset 0)"),
            ) from None
        except RelayError as exc:
            raise TusError(exc.status_code, str(exc)) from None
        if file is not None:  # None: a batch's file, visible with the rest of its batch
            headers["Wirelab-File-Url"] = f"/v1/relay/files/{file.id}"
        return headers

    @router.delete("/uploads/{upload_id}", summary="tus: terminate", status_code=204,
                   responses=answers(404, 409, 410, 412, 423, 507),
                   openapi_extra=_RESUMABLE)  # fmt: skip
    async def terminate(user: TusUser, upload_id: str) -> Response:
        """Delete the upload and its bytes."""
        try:
            upload, _ = await lookup(user, upload_id)
            if upload.batch_id is not None and not upload.complete:
                raise TusError(
                    409,
                    f"upload of batch {upload.batch_id!r}: cancel the whole batch with"
                    f" DELETE /v1/relay/batches/{upload.batch_id}",
                )
            await runtime.require().uploads.terminate(upload)
        except TusError as exc:
            return _fail(exc)
        except RelayError as exc:  # busy (423), or a full disk (507)
            return _fail(TusError(exc.status_code, str(exc)))
        return _answer(204)


def build_router(runtime: RelayRuntime) -> APIRouter:
    """All relay routes: files and inbox, tus uploads, batches and public keys."""
    router = build_base_router(runtime)
    add_tus_routes(router, runtime)
    add_batch_routes(router, runtime)
    add_key_routes(router, runtime)
    add_live_routes(router, runtime)
    add_pending_routes(router, runtime)
    return router
