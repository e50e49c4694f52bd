"""The Relay service: store-and-forward file queues between users.

Senders upload files addressed to a recipient; the recipient lists, downloads (with
ranges), leases and acknowledges them. HTTP API: ``docs/relay.md``.

- :mod:`wirelab.relay._http`: pure helpers (file names, ``Content-Disposition``, ``Range``);
- :class:`RelayService`: the logic, over :mod:`wirelab.db` and :mod:`wirelab.storage`;
- :func:`build_router`: the FastAPI routes under ``/v1/relay`` (with the tus uploads of
  :mod:`wirelab.relay._tus`, the batches of :mod:`wirelab.relay._batch_routes` and the
  public keys of :mod:`wirelab.relay._key_routes`).
"""

from __future__ import annotations

from ._asgi import MethodOverride, install, parse_origins
from ._errors import (
    DigestConflict,
    FileNotFound,
    FileTooLarge,
    OverQuota,
    RecipientNotFound,
    RelayError,
)
from ._http import (
    FALLBACK_NAME,
    FILENAME_MAX_BYTES,
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    parse_range,
    range_answer,
    sanitize_filename,
)
from ._limits import RelayLimits
from ._redirect import REDIRECT_ANSWER, REDIRECT_TTL, RedirectQuery, redirect_to
from ._routes import Auth, RelayRuntime, current_user, http_error
from ._service import RelayService, SendRequest
from ._tus import build_router

__all__ = [
    "FALLBACK_NAME",
    "FILENAME_MAX_BYTES",
    "REDIRECT_ANSWER",
    "REDIRECT_TTL",
    "Auth",
    "ByteRange",
    "DigestConflict",
    "FileNotFound",
    "FileTooLarge",
    "MethodOverride",
    "OverQuota",
    "RangeNotSatisfiable",
    "RecipientNotFound",
    "RedirectQuery",
    "RelayError",
    "RelayLimits",
    "RelayRuntime",
    "RelayService",
    "SendRequest",
    "build_router",
    "content_disposition",
    "current_user",
    "http_error",
    "install",
    "parse_origins",
    "parse_range",
    "range_answer",
    "redirect_to",
    "sanitize_filename",
]
