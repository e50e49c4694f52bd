"""Live pass-through: a recipient who is waiting receives a file while it is uploaded.

``POST /v1/relay/inbox/next?live=true`` answers, when no stored file is available, with
the oldest single tus upload in progress addressed to the caller (``"live": true``); each
upload is offered live to one waiting request only. ``GET /v1/relay/live/{id}`` then
streams its bytes from the start as they become durable in the blob store (never a byte
a crash could lose), and the rest from the committed file once the upload completed. The
file is stored, verified and listed exactly as usual: the receiver verifies it against
the stored file's SHA-256 before it writes or acknowledges anything. A live stream whose
upload is terminated, refused or expires ends short at once (the client sees a truncated
body). A live stream that delivered every byte counts as one download of the file
(``max_downloads``); a live GET of a finished upload streams its file while it may still
be downloaded (410 once its limit is reached, 404 once it is gone).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import StreamingResponse

from ..db import RelayFile, RelayUpload
from ..storage import BlobReader, UploadNotFoundError
from ._responses import answers
from ._routes import Auth, RelayRuntime
from ._service import RelayService

__all__ = ["LIVE_PATH", "add_live_routes", "live_json"]

LIVE_PATH: Final = "/v1/relay/live"
_POLL_S: Final = 0.05
"""How often the durable offset of a live upload is looked at (a small JSON read)."""
_COMMIT_WAIT_S: Final = 60.0
"""How long a live stream that sent every byte waits for the file to count a download."""


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
        "digest_algorithm": upload.digest_algorithm,
        "note": upload.note,
        "encryption": upload.encryption,
        "url": f"{LIVE_PATH}/{upload.id}",
        "file_url": f"/v1/relay/files/{upload.id}",
    }


async def _drain(reader: BlobReader) -> AsyncIterator[bytes]:
    async with reader:
        async for chunk in reader:
            yield chunk


async def _gone(service: RelayService, upload_id: str) -> bool:
    """Whether upload ``upload_id`` ended without a file to read: terminated, refused,
    swept, expired, or completed and its file already acknowledged or expired."""
    current = await service.db.relay.get_upload(upload_id)
    return current is None or current.complete or current.expires_at <= service.clock()


async def _file(service: RelayService, upload: RelayUpload) -> RelayFile | None:
    return await service.db.relay.get_file(upload.recipient, upload.id, service.clock())


async def live_body(service: RelayService, upload: RelayUpload) -> AsyncIterator[bytes]:
    """The upload's bytes from 0 to its length, as they become durable; then one download
    of the file is counted (towards ``max_downloads``) once it is committed.

    Ends short, at once, when the upload ends without a file (see :func:`_gone`).
    """
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
            if (file := await _file(service, upload)) is not None:
                async for chunk in _drain(await service.blobs.open(file.blob_key, sent)):
                    yield chunk
                await service.count_download(file)
                return
            if await _gone(service, upload.id):
                return  # the body ends short
        # Polling the durable offset keeps the upload path free of per-chunk work.
        await asyncio.sleep(_POLL_S)
    # Every byte was sent from the upload: count the download once the file exists (the
    # completing PATCH commits it right after its last byte, or the sender sends one).
    deadline = asyncio.get_running_loop().time() + _COMMIT_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        if (file := await _file(service, upload)) is not None:
            await service.count_download(file)
            return
        if await _gone(service, upload.id):
            return
        await asyncio.sleep(_POLL_S)


async def _check(service: RelayService, user: str, upload_id: str) -> RelayUpload:
    """The upload ``upload_id`` to ``user`` if it can still be received live: 404 when
    there is no such upload or it finished and its file is gone, 410 when it expired or
    its file reached its download limit (live streams in progress count too)."""
    upload = await service.db.relay.get_upload(upload_id)
    if upload is None or upload.recipient != user or upload.batch_id is not None:
        raise HTTPException(404, "no upload in progress with this id for you")
    downloads = service.uploads.live_streams[upload.id]
    if upload.complete:
        file = await _file(service, upload)
        if file is None:
            raise HTTPException(
                404, "the upload is finished and its file is no longer in your inbox"
            )
        downloads += file.downloads
    elif upload.expires_at <= service.clock():
        raise HTTPException(410, "the upload expired")
    if upload.max_downloads is not None and downloads >= upload.max_downloads:
        raise HTTPException(410, "download limit reached")
    return upload


async def _tracked(
    service: RelayService, upload_id: str, body: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """``body``, counted as a live stream of ``upload_id`` while it runs."""
    streams = service.uploads.live_streams
    streams[upload_id] += 1
    try:
        async for chunk in body:
            yield chunk
    finally:
        streams[upload_id] -= 1
        if not streams[upload_id]:
            del streams[upload_id]


def add_live_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add ``GET /v1/relay/live/{id}`` to ``router``."""

    @router.get(
        "/live/{upload_id}",
        summary="Receive an upload while it is sent (live pass-through)",
        response_class=StreamingResponse,
        responses=answers(
            404,
            410,
            501,
            _404="No such upload for you, or it finished and its file is gone.",
            _410="The upload expired, or its download limit is reached.",
            _501="Live pass-through is not offered on this server's storage (S3).",
        ),
    )
    async def live(user: Auth, upload_id: Annotated[str, Path(max_length=64)]) -> StreamingResponse:
        """The bytes of an upload addressed to you, streamed as they arrive and become
        durable; verify them against the stored file's SHA-256 (`GET /v1/relay/files/{id}`
        answers with it once the upload completed) before using them."""
        service = runtime.require()
        upload = await _check(service, user.name, upload_id)
        if not upload.complete and not service.blobs.live_reads:
            raise HTTPException(
                501,
                "live pass-through is not offered on this server's storage (S3): "
                f"download /v1/relay/files/{upload.id} once the upload completed",
            )
        return StreamingResponse(
            _tracked(service, upload.id, live_body(service, upload)),
            media_type=upload.media_type,
            headers={"Content-Length": str(upload.length), "Cache-Control": "no-store"},
        )
