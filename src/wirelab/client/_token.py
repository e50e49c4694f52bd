"""What the clients of the user APIs share: bearer-token auth, JSON requests, bulk bodies."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from .._closing import Closing
from .._exceptions import ProtocolError, UsageError
from ._bulk import BulkConnection
from ._errors import status_error, translating
from ._request import DEFAULT_URL, ClientBase, Timeout, client_options

__all__ = ["TokenClient"]


class TokenClient(ClientBase, Closing):
    """A client that authenticates every request with ``Authorization: Bearer <token>``.

    Small JSON requests go through httpx (``transport`` replaces its transport in tests);
    file bodies through one :class:`BulkConnection` (a real connection, always). Errors
    are the :mod:`wirelab` tree (see :mod:`wirelab.client._errors`).
    """

    _http: httpx.Client

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str,
        timeout: float | None = 30.0,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token or any(c.isspace() for c in token):
            raise UsageError("the API token is empty or contains white space")
        headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._http = httpx.Client(
            **client_options(url, timeout, headers), verify=verify, transport=transport
        )
        self._bulk = BulkConnection(url, headers=headers, timeout=timeout, verify=verify)
        self._token = token

    @property
    def token(self) -> str:
        """The API token this client authenticates with."""
        return self._token

    def close(self) -> None:
        """Close the connections."""
        self._http.close()
        self._bulk.close()

    def _request(self, method: str, path: str, *, timeout: Timeout = None, **kw: Any) -> Any:
        """Send a request; return the response (2xx only: others raise the server's error)."""
        self._check_open()
        with translating():
            response = self._http.request(method, path, timeout=timeout or self._http.timeout, **kw)
        if not response.is_success:
            raise status_error(response, response.content)
        return response

    def _json(self, method: str, path: str, *, timeout: Timeout = None, **kw: Any) -> Any:
        """The decoded JSON body of a 2xx response (``None`` for 204)."""
        response = self._request(method, path, timeout=timeout, **kw)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ProtocolError(f"invalid JSON from {path}: {exc}") from exc
