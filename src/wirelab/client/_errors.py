"""The one place where httpx and OS errors become wirelab errors.

Every network call of the client runs inside :func:`translating`, which maps the httpx
exception tree onto wirelab's (``raise ... from exc``, so the cause stays visible):

=================================  =================================================
httpx                              wirelab
=================================  =================================================
``TimeoutException``               :class:`~wirelab.TimeoutError`
``RemoteProtocolError`` in a body  :class:`~wirelab.TruncatedError` (the peer closed
                                   mid-body: "incomplete chunked read", "peer closed
                                   connection without sending complete message body")
``RemoteProtocolError`` otherwise  :class:`~wirelab.NetworkError` when the server hung
                                   up without answering, else
                                   :class:`~wirelab.ProtocolError`
``NetworkError``, ``ProxyError``   :class:`~wirelab.NetworkError` (refused, reset, ...)
``InvalidURL``, ``UnsupportedProtocol``  :class:`~wirelab.UsageError`
any other ``httpx.HTTPError``      :class:`~wirelab.ProtocolError`
=================================  =================================================

Error statuses become :class:`~wirelab.HTTPStatusError` with a one-line message built from
the server's JSON problem body (:func:`status_error`).
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import httpx

from .._exceptions import (
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    TimeoutError,
    TruncatedError,
    UsageError,
    WirelabError,
)

__all__ = ["MAX_ERROR_BODY", "describe_detail", "status_error", "translate", "translating"]

MAX_ERROR_BODY: Final = 65536
"""At most this many bytes of an error response are read to build the message."""

_MAX_MESSAGE: Final = 300
_NO_RESPONSE: Final = "without sending a response"  # httpcore: "Server disconnected without ..."


def _one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url(exc: Exception) -> str:
    """The URL (without query) of the request ``exc`` is about, or ``""`` if unknown."""
    try:
        request = exc.request if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # httpx raises this when the error carries no request
        request = None
    return "" if request is None else str(request.url.copy_with(query=None))


def _os_reason(exc: BaseException) -> str | None:
    """The text of the first OS error in ``exc``'s cause chain, if any.

    The async transport wraps OS errors (a refused connection reads "All connection
    attempts failed", a reset "ReadError"); the OS error underneath says what happened.
    """
    seen: set[int] = set()
    found: OSError | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current is not exc:
            if current.errno is not None:  # the kernel's (or TLS's) own error: most precise
                return _describe_os_error(current)
            found = found or current
        current = current.__cause__ or current.__context__
    return None if found is None else str(found)


def _describe_os_error(error: OSError) -> str:
    if isinstance(error, ssl.SSLError) or error.errno is None:
        return str(error)
    # asyncio words some errors its own way ("Connect call failed ..."): name the errno.
    return f"[Errno {error.errno}] {os.strerror(error.errno)}"


def translate(exc: Exception, *, in_body: bool = False) -> WirelabError:
    """Return the wirelab error for a low-level ``exc`` (the caller raises it ``from exc``).

    ``in_body`` says whether the response headers had already arrived: then an early close
    is a truncated body rather than a failed exchange.
    """
    if isinstance(exc, OSError):
        return NetworkError(_one_line(f"network error: {exc.strerror or exc}"))
    reason = _one_line(_os_reason(exc) or str(exc) or type(exc).__name__)
    url = _url(exc)
    where = f" ({url})" if url else ""
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(f"cannot connect to {url or 'the server'}: {reason}")
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError(f"no progress within the timeout ({type(exc).__name__}){where}")
    if isinstance(exc, httpx.RemoteProtocolError):
        if in_body:
            return TruncatedError(f"the response body ended early: {reason}{where}")
        if _NO_RESPONSE in reason:
            return NetworkError(f"connection closed by the server: {reason}{where}")
        return ProtocolError(f"invalid HTTP response: {reason}{where}")
    if isinstance(exc, httpx.NetworkError | httpx.ProxyError):
        return NetworkError(f"network error: {reason}{where}")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return UsageError(f"invalid URL: {reason}")
    return ProtocolError(f"HTTP error: {reason}{where}")


@contextmanager
def translating(*, in_body: bool = False) -> Iterator[None]:
    """Run the block, re-raising httpx and OS errors as wirelab errors (see :func:`translate`)."""
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        raise translate(exc, in_body=in_body) from exc


def describe_detail(detail: Any) -> str:
    """Render a problem body's ``detail`` as text.

    FastAPI's validation list ``[{"loc": ["query", "count"], "msg": "..."}]`` becomes
    ``"count: ..."`` (problems joined by ``"; "``); a string stays as is; anything else is
    rendered as compact JSON.
    """
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail and all(isinstance(d, dict) for d in detail):
        parts = []
        for item in detail:
            loc = [str(p) for p in item.get("loc", []) if p not in ("query", "path", "body")]
            msg = str(item.get("msg", "invalid"))
            parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
        return "; ".join(parts)
    return json.dumps(detail, separators=(",", ":"), default=str)


def status_error(response: httpx.Response, body: bytes) -> HTTPStatusError:
    """The error for a response with a non-2xx status; ``body`` is (the start of) its body.

    The message is one line: ``"HTTP 422 from /v1/stream: count: must be <= 100000"``. It
    uses the JSON problem body's ``detail`` if there is one, else the body text if short and
    textual, else the reason phrase. ``detail`` on the error is the decoded JSON body (or
    ``None``).
    """
    decoded: Any = None
    text = ""
    try:
        decoded = json.loads(body)
    except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
        if response.headers.get("content-type", "").startswith("text/"):
            text = body.decode("utf-8", "replace")
    if isinstance(decoded, dict) and "detail" in decoded:
        text = describe_detail(decoded["detail"])
    elif decoded is not None:
        text = describe_detail(decoded)
    text = _one_line(text or response.reason_phrase or "error")
    path = response.request.url.path
    return HTTPStatusError(
        f"HTTP {response.status_code} from {path}: {text}",
        status_code=response.status_code,
        detail=decoded,
    )
