"""The recipient's view of uploads addressed to it that are not finished: list, refuse.

``GET /v1/relay/inbox/pending`` lists them (tus uploads and the files of undelivered
batches) with how much arrived; ``DELETE /v1/relay/inbox/pending/{id}`` refuses one: the
upload (for a batch's file: the whole batch) and its bytes are deleted, its quota
reservation ends, and its sender's next request about it gets 404.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from starlette.responses import Response

from ..db import RelayUpload
from ..storage import UploadNotFoundError
from ._responses import answers
from ._routes import _AUTH_RESPONSES, Auth, RelayRuntime, _iso
from ._service import RelayService
from ._uploads import UploadGone

__all__ = ["add_pending_routes", "pending", "refuse"]


def pending_json(upload: RelayUpload, received: int) -> dict[str, Any]:
    """One entry of ``GET /v1/relay/inbox/pending``."""
    return {
        "id": upload.id,
        "sender": upload.owner,
        "name": upload.name,
        "media_type": upload.media_type,
        "size": upload.length,
        "received": received,
        "note": upload.note,
        "created_at": _iso(upload.created_at),
        "expires_at": _iso(upload.expires_at),
        "batch": None
        if upload.batch_id is None
        else {"id": upload.batch_id, "index": upload.batch_index},
    }


async def pending(service: RelayService, recipient: str) -> list[tuple[RelayUpload, int]]:
    """The unfinished, unexpired uploads to ``recipient``, oldest first, each with its
    durable offset."""
    now = service.clock()
    result = []
    for upload in await service.db.relay.list_uploads():
        if upload.recipient != recipient or upload.complete or upload.expires_at <= now:
            continue
        received = upload.length if upload.received else 0
        if not upload.received:
            with contextlib.suppress(UploadNotFoundError):
                received = await service.blobs.upload_offset(upload.id)
        result.append((upload, received))
    return result


async def refuse(service: RelayService, recipient: str, upload_id: str) -> None:
    """Delete the unfinished upload ``upload_id`` to ``recipient`` (a batch's: the whole
    batch) with its bytes; :class:`UploadGone` when there is none."""
    upload = await service.db.relay.get_upload(upload_id)
    if upload is None or upload.recipient != recipient or upload.complete:
        raise UploadGone(f"no upload {upload_id!r} in progress for you")
    if upload.batch_id is None:
        await service.uploads.terminate(upload)
        return
    batch_id = upload.batch_id
    for key in await service.freeing(lambda: service.db.relay.delete_batch(batch_id)):
        await service.discard_exclusive(key)


def add_pending_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add ``/inbox/pending`` to the relay's ``router``."""

    @router.get(
        "/inbox/pending", summary="List the uploads on their way to you", responses=_AUTH_RESPONSES
    )
    async def list_pending(user: Auth) -> Any:
        """Uploads addressed to you that are not finished yet (`received` of `size` bytes
        arrived), oldest first; refuse one with `DELETE /v1/relay/inbox/pending/{id}`."""
        found = await pending(runtime.require(), user.name)
        return {"uploads": [pending_json(u, received) for u, received in found]}

    @router.delete(
        "/inbox/pending/{upload_id}",
        status_code=204,
        summary="Refuse an upload on its way to you",
        responses=answers(404, 507, _404="No such upload in progress for you."),
    )
    async def refuse_pending(
        user: Auth, upload_id: Annotated[str, Path(max_length=64)]
    ) -> Response:
        """Delete the upload and its bytes (for a file of a batch: the whole batch); its
        room in your quota is free at once and its sender's next request gets 404."""
        try:
            await refuse(runtime.require(), user.name, upload_id)
        except UploadGone as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(status_code=204)
