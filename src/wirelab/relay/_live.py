"""Live pass-through: a recipient who is waiting receives a file while it is uploaded.

``POST /v1/relay/inbox/next?live=true`` answers, when no stored file is available, with
the oldest single tus upload in progress addressed to the caller (``"live": true``); each
upload is offered live to one waiting request only. ``GET /v1/relay/live/{id}`` then
streams its bytes from the start as they become durable in the blob store (never a byte
a crash could lose), and the rest from the committed file once the upload completed. The
file is stored, verified and listed exactly as usual: the receiver verifies it against
the stored file's SHA-256 before it writes or acknowledges anything. A live stream whose
upload is terminated or expires ends short (the client sees a truncated body).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import StreamingResponse

from ..db import RelayUpload
from ..storage import BlobReader, UploadNotFoundError
from ._responses import answers
from ._routes import Auth, RelayRuntime
from ._service import RelayService

__all__ = ["LIVE_PATH", "add_live_routes", "live_json"]

LIVE_PATH: Final = "/v1/relay/live"
_POLL_S: Final = 0.05
"""How often the durable offset of a live upload is looked at (a small JSON read)."""


def live_json(upload: RelayUpload) -> dict[str, Any]:
    """The answer of ``next?live=true`` for an upload in progress."""
    return {
        "live": True,
        "id": upload.id,
        "sender": upload.owner,
        "recipient": upload.recipient,
        "name": upload.name,
        "media_type": upload.media_type,
        "size": upload.length,
        "note": upload.note,
        "encryption": upload.encryption,
        "url": f"{LIVE_PATH}/{upload.id}",
        "file_url": f"/v1/relay/files/{upload.id}",
    }


async def _drain(reader: BlobReader) -> AsyncIterator[bytes]:
    async with reader:
        async for chunk in reader:
            yield chunk


async def live_body(service: RelayService, upload: RelayUpload) -> AsyncIterator[bytes]:
    """The upload's bytes from 0 to its length, as they become durable."""
    sent = 0
    while sent < upload.length:
        try:
            durable: int | None = await service.blobs.upload_offset(upload.id)
        except UploadNotFoundError:
            durable = None
        if durable is not None and durable > sent:
            try:
                reader = await service.blobs.open_upload(upload.id, sent, durable)
            except UploadNotFoundError:
                continue  # committed in between: read the blob next time round
            async for chunk in _drain(reader):
                yield chunk
            sent = durable
            continue
        if durable is None:  # committed, or removed: the rest comes from the file if any
            file = await service.db.relay.get_file(upload.recipient, upload.id, service.clock())
            if file is not None:
                async for chunk in _drain(await service.blobs.open(file.blob_key, sent)):
                    yield chunk
                return
            if await service.db.relay.get_upload(upload.id) is None:
                return  # terminated or expired: the body ends short
        # Polling the durable offset keeps the upload path free of per-chunk work.
        await asyncio.sleep(_POLL_S)


def add_live_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add ``GET /v1/relay/live/{id}`` to ``router``."""

    @router.get(
        "/live/{upload_id}",
        summary="Receive an upload while it is sent (live pass-through)",
        response_class=StreamingResponse,
        responses=answers(404, _404="No such upload in progress for you."),
    )
    async def live(user: Auth, upload_id: Annotated[str, Path(max_length=64)]) -> StreamingResponse:
        """The bytes of an upload addressed to you, streamed as they arrive and become
        durable; verify them against the stored file's SHA-256 (`GET /v1/relay/files/{id}`
        answers with it once the upload completed) before using them."""
        service = runtime.require()
        upload = await service.db.relay.get_upload(upload_id)
        if upload is None or upload.recipient != user.name or upload.batch_id is not None:
            raise HTTPException(404, "no upload in progress with this id for you")
        return StreamingResponse(
            live_body(service, upload),
            media_type=upload.media_type,
            headers={"Content-Length": str(upload.length), "Cache-Control": "no-store"},
        )
