"""What the relay adds around the app's routes: middleware and error answers.

- :class:`MethodOverride`: ``POST`` with ``X-HTTP-Method-Override: PATCH|DELETE`` on a
  tus upload is that method (tus 1.0.0 requires servers to honour it, for environments
  that can only send ``GET`` and ``POST``). Only under :data:`TUS_PREFIX`: nothing else
  is a tus resource.
- :func:`parse_origins` and :data:`CORS_*`: the settings of ``--cors-origins``, applied
  by the server with Starlette's ``CORSMiddleware`` so that a page on another origin can
  upload (tus-js-client, Uppy) and read the tus answer headers.
- A full disk (:class:`~wirelab.storage.StorageFullError`,
  :class:`~wirelab.db.DatabaseFullError`) anywhere is a 507 JSON answer, not a 500.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .._exceptions import UsageError
from ..db import DatabaseFullError
from ..storage import StorageAccessError, StorageFullError

__all__ = [
    "CORS_ALLOW_HEADERS",
    "CORS_EXPOSE_HEADERS",
    "CORS_METHODS",
    "TUS_PREFIX",
    "MethodOverride",
    "install",
    "parse_origins",
]

_log = logging.getLogger("wirelab.relay")

TUS_PREFIX: Final = "/v1/relay/uploads"
_OVERRIDABLE: Final = frozenset({"PATCH", "DELETE"})

CORS_METHODS: Final = ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Wirelab-Sha256",
    "Wirelab-Digest",
    "X-HTTP-Method-Override",
    "X-Requested-With",
    "Range",
    "If-Range",
)
CORS_EXPOSE_HEADERS: Final = (
    "Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Upload-Metadata",
    "Wirelab-File-Url",
    "Wirelab-Sha256",
    "Wirelab-Digest",
    "Repr-Digest",
    "Content-Range",
    "Content-Disposition",
    "Accept-Ranges",
    "ETag",
)


class MethodOverride:
    """ASGI middleware: ``POST`` + ``X-HTTP-Method-Override`` under :data:`TUS_PREFIX`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and str(scope["path"]).startswith(TUS_PREFIX + "/")
        ):
            for name, value in scope["headers"]:
                if name == b"x-http-method-override":
                    method = value.decode("latin-1").strip().upper()
                    if method in _OVERRIDABLE:
                        scope = {**scope, "method": method}
                    break
        await self.app(scope, receive, send)


def parse_origins(text: str | None) -> tuple[str, ...]:
    """``--cors-origins``: comma-separated origins (``https://app.example:8443``) or
    ``*``; empty or ``None``: CORS off. :class:`~wirelab.UsageError` naming a bad one."""
    origins: list[str] = []
    for item in (text or "").split(","):
        origin = item.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*":
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise UsageError(
                    f"not a CORS origin: {item.strip()!r} (expected scheme://host[:port], or *)"
                )
        origins.append(origin)
    return tuple(origins)


_TUS_PATH = "/v1/relay/uploads"


async def _disk_full(request: Request, exc: Exception) -> Response:
    # A tus client needs the protocol header on every answer, errors included.
    tus = request.url.path == _TUS_PATH or request.url.path.startswith(_TUS_PATH + "/")
    headers = {"Tus-Resumable": "1.0.0"} if tus else None
    return JSONResponse(
        {"detail": f"{exc} (507: try again later)"}, status_code=507, headers=headers
    )


async def _storage_refused(request: Request, exc: Exception) -> Response:
    # The client's request was fine: the server's storage is misconfigured or down. The
    # log names what to fix; the answer does not expose the storage's details.
    _log.error("storage failure on %s %s: %s", request.method, request.url.path, exc)
    detail = "the server's storage is unavailable (503: try again later)"
    return JSONResponse({"detail": detail}, status_code=503)


def install(app: Starlette, cors_origins: tuple[str, ...]) -> None:
    """Install :class:`MethodOverride`, the 507 answers of a full disk and, when
    ``cors_origins`` is not empty, CORS (outermost, so that every answer, errors
    included, carries its headers). The bearer token travels in a header, never in a
    cookie: no credentials mode."""
    for full in (StorageFullError, DatabaseFullError):
        app.add_exception_handler(full, _disk_full)
    app.add_exception_handler(StorageAccessError, _storage_refused)
    app.add_middleware(MethodOverride)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_ALLOW_HEADERS),
            expose_headers=list(CORS_EXPOSE_HEADERS),
            max_age=600,
        )
