"""``?redirect=1`` on download routes: a 307 to a presigned URL of the bytes, when the
blob store hands one out (S3 storage); other stores serve the bytes as usual."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from starlette.responses import RedirectResponse, Response

__all__ = ["REDIRECT_ANSWER", "REDIRECT_TTL", "RedirectQuery", "redirect_to"]

#: Seconds a presigned download URL stays valid: long enough to start a download (S3
#: checks the expiry when a request starts, not while its answer streams), short enough
#: that a leaked URL is soon useless.
REDIRECT_TTL = 300

RedirectQuery = Annotated[
    bool,
    Query(
        description="1: answer 307 with a presigned, expiring URL of the bytes "
        f"(valid {REDIRECT_TTL} s) when the server's storage offers one (S3); "
        "otherwise the bytes are served as without it."
    ),
]

#: The OpenAPI ``responses`` entry of a route taking :data:`RedirectQuery`.
REDIRECT_ANSWER: dict[int | str, dict[str, Any]] = {
    307: {
        "description": "With `redirect=1` on S3 storage: the presigned, expiring URL of "
        "the bytes in `Location`.",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}


def redirect_to(location: str) -> Response:
    """The 307 answer (a temporary redirect: the method and a ``Range`` are kept)."""
    return RedirectResponse(location, status_code=307, headers={"Cache-Control": "no-store"})
