"""HTTP routes of relay batches: ``/v1/relay/batches`` (tag ``relay``; ``docs/relay.md``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from .._validate import INT64_MAX
from ..db import RelayBatch, RelayUpload
from ._batches import BatchFile, BatchGone, BatchRequest
from ._digest_http import DigestSyntaxError, metadata_digest
from ._errors import RelayError
from ._http import sanitize_filename
from ._params import STRICT_FLOAT, STRICT_INT
from ._responses import answers
from ._routes import (
    NOTE_MAX,
    Auth,
    RelayRuntime,
    clean_note,
    file_json,
    http_error,
    valid_encryption,
    valid_media_type,
)

__all__ = ["BatchIn", "add_batch_routes"]

MAX_BATCH_FILES = 1000


class BatchFileIn(BaseModel):
    """One file of a batch manifest."""

    name: str = Field(description="File name (sanitized by the server; unique in the batch).")
    size: Annotated[int, STRICT_INT] = Field(ge=0, le=INT64_MAX, description="Exact size in bytes.")
    sha256: Annotated[str | None, Field(pattern=r"^[0-9a-fA-F]{64}$")] = Field(
        None, description="SHA-256, 64 hex digits; or null: sent on the completing PATCH."
    )
    blake3: Annotated[str | None, Field(pattern=r"^[0-9a-fA-F]{64}$")] = Field(
        None, description="BLAKE3, 64 hex digits (instead of `sha256`)."
    )
    digest_algorithm: Literal["blake3", "sha256"] | None = Field(
        None, description="The algorithm of a digest sent on the completing PATCH."
    )
    media_type: str | None = Field(None, description="Media type (default octet-stream).")
    encryption: str | None = Field(
        None, description="Opaque encryption descriptor, printable ASCII, up to 2048 chars."
    )


class BatchIn(BaseModel):
    """``POST /v1/relay/batches``: one delivery of several files."""

    to: str = Field(description="Recipient's user name.")
    note: str | None = Field(None, max_length=NOTE_MAX, description="Free text.")
    ttl: Annotated[float | None, STRICT_FLOAT] = Field(
        None, gt=0, description="Seconds the delivered files live."
    )
    max_downloads: Annotated[int | None, STRICT_INT] = Field(
        None, ge=1, le=INT64_MAX, description="Downloads allowed per file."
    )
    files: list[BatchFileIn] = Field(min_length=1, max_length=MAX_BATCH_FILES)


def _invalid(index: int, field: str, msg: str) -> RequestValidationError:
    loc = ["body", "files", index, field]
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": None}])


def _files(body: BatchIn) -> list[BatchFile]:
    """The manifest's entries, sanitized and checked (422 naming the index)."""
    seen: dict[str, int] = {}
    files = []
    for i, entry in enumerate(body.files):
        name = sanitize_filename(entry.name)
        if name in seen:
            raise _invalid(i, "name", f"duplicate name {name!r} (also files[{seen[name]}])")
        seen[name] = i
        media_type = (entry.media_type or "").strip() or "application/octet-stream"
        if not valid_media_type(media_type):
            raise _invalid(i, "media_type", "not a valid media type")
        if entry.encryption is not None and not valid_encryption(entry.encryption):
            raise _invalid(i, "encryption", "must be printable ASCII, at most 2048 characters")
        fields = {"sha256": entry.sha256, "blake3": entry.blake3}
        try:
            algorithm, digest = metadata_digest(
                {**fields, "digest_algorithm": entry.digest_algorithm}, f"files[{i}]"
            )
        except DigestSyntaxError as exc:
            raise _invalid(i, "digest_algorithm", str(exc)) from None
        files.append(BatchFile(name, entry.size, digest, media_type, entry.encryption, algorithm))
    return files


def _upload_url(upload: RelayUpload) -> str:
    return f"/v1/relay/uploads/{upload.id}"


def _created(batch: RelayBatch, uploads: list[RelayUpload]) -> dict[str, Any]:
    return {
        "id": batch.id,
        "to": batch.recipient,
        "files": [
            {"index": u.batch_index, "name": u.name, "size": u.length, "upload_url": _upload_url(u)}
            for u in uploads
        ],
    }


_404 = "No such batch for you (or no such recipient)."
_RESPONSES = answers(404, _404=_404)


def add_batch_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add the batch routes to the relay's ``router`` (prefix ``/v1/relay``)."""

    @router.post(
        "/batches",
        status_code=201,
        summary="Create a batch (one tus upload per file)",
        responses={
            **answers(404, 413, 429, 507, _404=_404),
            422: {"description": "Invalid manifest (the detail names the field and index)."},
        },
    )
    async def create(user: Auth, body: BatchIn) -> Any:
        """Create one upload per file; PATCH each (tus). The files become visible
        together, in manifest order, when the last one completes."""
        service = runtime.require()
        if body.ttl is not None and body.ttl > service.limits.max_ttl:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ["body", "ttl"], "input": body.ttl,
                  "msg": f"must be at most {service.limits.max_ttl:g} seconds"}]
            )  # fmt: skip
        req = BatchRequest(
            owner=user.name,
            recipient=body.to,
            files=_files(body),
            note=None if body.note is None else clean_note(body.note),
            ttl=body.ttl,
            max_downloads=body.max_downloads,
        )
        try:
            batch, uploads = await service.batches.create(req)
        except RelayError as exc:
            raise http_error(exc) from None
        location = f"/v1/relay/batches/{batch.id}"
        return JSONResponse(
            _created(batch, uploads), status_code=201, headers={"Location": location}
        )

    @router.get("/batches/{batch_id}", summary="A batch: state or manifest", responses=_RESPONSES)
    async def get(user: Auth, batch_id: str) -> Any:
        """To its sender: the upload state. To its recipient, once delivered: the manifest
        (the files still in the inbox). Anyone else: 404."""
        batches = runtime.require().batches
        batch = await batches.get(batch_id)
        delivered = batch is not None and batch.delivered_at is not None
        try:
            if batch is not None and batch.recipient == user.name and delivered:
                batch, files = await batches.manifest(user.name, batch_id)
                return {
                    "id": batch.id,
                    "sender": batch.owner,
                    "note": batch.note,
                    "files": [file_json(f) for f in files],
                }
            batch, uploads = await batches.state(user.name, batch_id)
        except BatchGone as exc:
            raise http_error(exc) from None
        return {
            "id": batch.id,
            "to": batch.recipient,
            "complete": batch.delivered_at is not None,
            "files": [
                {
                    "index": u.batch_index,
                    "name": u.name,
                    "size": u.length,
                    "upload_url": _upload_url(u),
                    "offset": offset,
                    "complete": u.received,
                }
                for u, offset in uploads
            ],
        }

    @router.delete(
        "/batches/{batch_id}",
        status_code=204,
        summary="Cancel a batch before its delivery",
        responses=answers(404, 409, 507, _404=_404, _409="The batch was delivered."),
    )
    async def cancel(user: Auth, batch_id: str) -> Response:
        """Delete the batch, its uploads and their bytes (sender only, before delivery)."""
        try:
            await runtime.require().batches.cancel(user.name, batch_id)
        except RelayError as exc:
            raise http_error(exc) from None
        return Response(status_code=204)
