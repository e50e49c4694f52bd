"""Large request and response bodies over ``http.client``, for the relay's data path.

httpx moves bulk bodies at ~0.4-0.5 GB/s on loopback here (pure-Python parsing of 64 KiB
reads), ``http.client`` with ``readinto`` a reused 1 MiB buffer at 0.8-3 GB/s; the relay
client therefore sends file bytes (tus ``PATCH``) and receives them (``GET``) through this
module and keeps httpx for the small JSON requests. Errors are translated here, at this
module's boundary, into the same wirelab tree as the httpx side (:mod:`._errors`).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from .._exceptions import (
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    TruncatedError,
    UsageError,
    WirelabError,
)
from .._exceptions import TimeoutError as WirelabTimeout
from ._errors import MAX_ERROR_BODY, status_error

__all__ = ["BLOCK", "BulkConnection", "BulkResponse", "read_into"]

BLOCK: Final = 1024 * 1024
"""Read and write size of the data path: large writes matter more than anything else."""


def translate_bulk(exc: BaseException, what: str, *, in_body: bool) -> WirelabError:
    """The wirelab error for an ``http.client``/socket error during ``what``."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return WirelabTimeout(f"no progress within the timeout during {what}")
    if isinstance(exc, http.client.IncompleteRead):
        return TruncatedError(
            f"the response body of {what} ended early "
            f"({len(exc.partial)} more bytes read, {exc.expected} missing)"
        )
    if isinstance(exc, http.client.RemoteDisconnected):
        return NetworkError(f"connection closed by the server during {what}")
    if isinstance(exc, ConnectionRefusedError):
        return NetworkError(f"cannot connect to the server for {what}: {exc.strerror or exc}")
    if isinstance(exc, ssl.SSLError):
        return NetworkError(f"TLS error during {what}: {exc}")
    if isinstance(exc, OSError):
        if in_body:
            return TruncatedError(f"the transfer of {what} broke: {exc.strerror or exc}")
        return NetworkError(f"network error during {what}: {exc.strerror or exc}")
    if isinstance(exc, http.client.HTTPException):
        return ProtocolError(f"invalid HTTP response to {what}: {type(exc).__name__} {exc}")
    return ProtocolError(f"{type(exc).__name__} during {what}: {exc}")


@dataclass(frozen=True, slots=True)
class BulkResponse:
    """A response to an upload: status, headers (lower-case names) and the short body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def error(self, method: str, path: str) -> HTTPStatusError:
        """The :class:`~wirelab.HTTPStatusError` describing this (error) response."""
        response = httpx.Response(
            self.status,
            headers=self.headers,
            request=httpx.Request(method, "http://server" + path),
        )
        return status_error(response, self.body)


class BulkConnection:
    """One keep-alive HTTP/1.1 connection to the server, reopened after any error.

    ``verify`` is the httpx-style TLS setting: ``True`` (system CAs), ``False`` (no check)
    or an :class:`ssl.SSLContext`. ``headers`` go with every request (authorization).
    Not thread-safe; one transfer at a time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float | None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"invalid server URL {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self._https:
            if isinstance(verify, ssl.SSLContext):
                self._context = verify
            elif verify:
                self._context = ssl.create_default_context()
            else:
                self._context = ssl._create_unverified_context()  # noqa: S323 - asked for
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and _dropped(self._conn):
            self.close()
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        chunks: Iterable[bytes | memoryview],
        length: int,
    ) -> BulkResponse:
        """Send a request whose body is ``chunks`` (exactly ``length`` bytes in total).

        Returns the response with at most :data:`~._errors.MAX_ERROR_BODY` bytes of body;
        the status is not checked. Raises the wirelab network errors; a body that does not
        add up to ``length`` raises :class:`~wirelab.UsageError` (the local file changed).
        """
        what = f"{method} {path}"
        conn = self._connection()
        in_body = False
        try:
            conn.putrequest(method, self._prefix + path, skip_accept_encoding=True)
            for name, value in {**self._headers, **headers}.items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            in_body = True
            sent = 0
            for chunk in chunks:
                sent += len(chunk)
                if sent > length:
                    raise UsageError(f"the body of {what} grew past {length} bytes")
                conn.send(chunk)
            if sent != length:
                raise UsageError(f"the body of {what} ended at {sent} of {length} bytes")
            response = conn.getresponse()
            body = response.read(MAX_ERROR_BODY)
            if not response.isclosed():  # an unread rest: the connection cannot be reused
                self.close()
            return BulkResponse(
                response.status, {k.lower(): v for k, v in response.getheaders()}, body
            )
        except (OSError, http.client.HTTPException) as exc:
            # A server that answers early (413, 401) and closes makes our writes fail:
            # its answer is the useful message, when it can still be read.
            early = self._early_answer(conn) if in_body else None
            self.close()
            if early is not None:
                return early
            raise translate_bulk(exc, what, in_body=False) from exc
        except BaseException:  # our own errors, Ctrl-C: the request is cut, start afresh
            self.close()
            raise

    @staticmethod
    def _early_answer(conn: http.client.HTTPConnection) -> BulkResponse | None:
        try:
            response = conn.getresponse()
            body = response.read(MAX_ERROR_BODY)
        except Exception:  # no answer was sent: report the original error
            return None
        return BulkResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, body)

    @contextmanager
    def get(self, path: str, headers: Mapping[str, str]) -> Iterator[http.client.HTTPResponse]:
        """Send a ``GET`` and yield the response, with its body unread.

        Read it with :func:`read_into`. The connection is closed afterwards unless the
        body was read to its end.
        """
        what = f"GET {path}"
        conn = self._connection()
        try:
            conn.request("GET", self._prefix + path, headers={**self._headers, **headers})
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise translate_bulk(exc, what, in_body=False) from exc
        try:
            yield response
        except BaseException:
            self.close()
            raise
        if not response.isclosed():
            self.close()

    def error_of(self, response: http.client.HTTPResponse, path: str) -> HTTPStatusError:
        """The error for an error ``response`` to ``GET path`` (reads a little of its body)."""
        try:
            body = response.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            body = b""
        return BulkResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, body
        ).error("GET", path)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the peer closed an idle keep-alive connection (servers do after a few
    seconds: uvicorn after 5). An idle connection has nothing to read; if it is readable,
    that is the close (or stray bytes), and a request sent on it would fail. Checking
    first costs one ``select`` and spares a failed request and a retry's wait."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):  # closed or invalid descriptor
        return True
    return bool(readable)


def read_into(response: http.client.HTTPResponse, view: memoryview, what: str) -> int:
    """Read the next part of ``response``'s body into ``view``; ``0`` at its end.

    A body shorter than its ``Content-Length`` raises :class:`~wirelab.TruncatedError`
    (``http.client`` itself would return 0 at such a premature end of file).
    """
    try:
        n = response.readinto(view)
    except (OSError, http.client.HTTPException) as exc:
        raise translate_bulk(exc, what, in_body=True) from exc
    if not n and response.length:
        raise TruncatedError(
            f"the response body of {what} ended early ({response.length} bytes missing)"
        )
    return n
