"""HTTP details shared by the sync and async clients: endpoints, headers, response checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx

from .._exceptions import ProtocolError, UsageError
from .._version import __version__
from ._errors import MAX_ERROR_BODY, status_error

__all__ = [
    "DEFAULT_URL",
    "HEALTH_PATH",
    "MANIFEST_PATH",
    "STREAM_HEADERS",
    "STREAM_PATH",
    "ClientBase",
    "ErrorBody",
    "Timeout",
    "check_stream_response",
    "client_options",
    "decode_json",
]

DEFAULT_URL: Final = "http://127.0.0.1:8080"
STREAM_MEDIA_TYPE: Final = "application/vnd.wirelab.stream"
STREAM_PATH: Final = "/v1/stream"
MANIFEST_PATH: Final = "/v1/stream/manifest"
HEALTH_PATH: Final = "/healthz"

STREAM_HEADERS: Final = {
    "Accept": STREAM_MEDIA_TYPE,
    # Compressing random samples wastes CPU on both ends; ask for the bytes as they are.
    "Accept-Encoding": "identity",
}

Timeout = float | httpx.Timeout | None


def client_options(
    base_url: str,
    timeout: Timeout,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient`` (minus the transport)."""
    return {
        "base_url": base_url,
        "timeout": timeout,
        "headers": {"User-Agent": f"wirelab/{__version__}", **(headers or {})},
        "follow_redirects": False,
    }


class ClientBase:
    """What :class:`~wirelab.client.Client` and :class:`~wirelab.client.AsyncClient` share."""

    _http: httpx.Client | httpx.AsyncClient

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return str(self._http.base_url)

    def _check_open(self) -> None:
        if self._http.is_closed:
            raise UsageError("the client is closed")


class ErrorBody:
    """Collects at most :data:`MAX_ERROR_BODY` bytes of an error response body."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> bool:
        """Append ``chunk``; return ``False`` once enough was collected."""
        self.data += chunk[: MAX_ERROR_BODY - len(self.data)]
        return len(self.data) < MAX_ERROR_BODY


def check_stream_response(response: httpx.Response) -> None:
    """Raise :class:`~wirelab.ProtocolError` unless a 2xx response carries a wirelab stream.

    A missing ``Content-Type`` is accepted (the decoder checks the preamble anyway); a
    different one means the URL does not point at a wirelab server.
    """
    content_type = response.headers.get("content-type")
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != STREAM_MEDIA_TYPE:
        raise ProtocolError(
            f"expected {STREAM_MEDIA_TYPE} from {response.request.url.path}, "
            f"got {media_type or 'no media type'}; is this a wirelab server?"
        )


def decode_json(response: httpx.Response, body: bytes) -> dict[str, Any]:
    """The JSON object of a complete response; raises for an error status or bad JSON."""
    if not response.is_success:
        raise status_error(response, body[:MAX_ERROR_BODY])
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON from {response.request.url.path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object from {response.request.url.path}")
    return obj
