"""The asyncio client: :class:`AsyncClient`, :class:`AsyncEventStream` and
:class:`AsyncStreamReader`. Same behaviour as the blocking client, awaited."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from .._exceptions import ProtocolError, UsageError
from ..framing import Event
from ._errors import status_error, translating
from ._files import StreamedFile
from ._options import StreamOptions, stream_query
from ._request import (
    DEFAULT_URL,
    HEALTH_PATH,
    MANIFEST_PATH,
    STREAM_HEADERS,
    STREAM_PATH,
    ClientBase,
    ErrorBody,
    Timeout,
    check_stream_response,
    client_options,
    decode_json,
)
from ._stream import FileAssembler, ReaderState, StreamInfo, StreamSession

__all__ = ["AsyncClient", "AsyncEventStream", "AsyncStreamReader"]


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator


class _Opened(StreamInfo):
    """Base of the readers: ``async with`` opens the stream (:meth:`open`) and closes it."""

    async def open(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncEventStream(_Opened):
    """The verified decoder events of one ``/v1/stream`` response, as they arrive.

    An async iterator and an async context manager; see :class:`~wirelab.client.EventStream`
    for the contract (lazy request, ``X`` frames raise :class:`~wirelab.TruncatedError`,
    bounded memory). Prefer ``async with``: it closes the response even when the loop is
    left early.
    """

    def __init__(self, http: httpx.AsyncClient, query: dict[str, str]) -> None:
        self._http = http
        self._query = query
        self._state = ReaderState.NEW
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] = _no_chunks()
        self._session = StreamSession()
        self._eof = False

    def _stream_session(self) -> StreamSession:
        return self._session

    async def open(self) -> None:
        """Send the request and read up to the stream header (idempotent while open)."""
        if self._state is not ReaderState.NEW:
            if self._state is ReaderState.CLOSED:
                raise UsageError("the stream was closed")
            return
        request = self._http.build_request(
            "GET", STREAM_PATH, params=self._query, headers=STREAM_HEADERS
        )
        self._state = ReaderState.OPEN
        try:
            with translating():
                self._response = response = await self._http.send(request, stream=True)
            if not response.is_success:
                raise status_error(response, await self._error_body(response))
            check_stream_response(response)
            self._chunks = response.aiter_bytes()
            self._session = StreamSession(response.headers)
            while not self._session.started:  # the header is the first frame
                # next_event() raises an error queued before the header; an event there
                # (or the end of the body without an error) would be a decoder bug.
                if self._session.next_event() is not None or self._eof:
                    raise ProtocolError("the stream did not start with a stream header")
                await self._pump()
        except BaseException:
            await self._finish()
            raise

    async def aclose(self) -> None:
        """Close the response (the server stops generating). Safe to call twice."""
        if self._state in (ReaderState.NEW, ReaderState.OPEN):
            self._state = ReaderState.CLOSED
        if self._response is not None:
            await self._response.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self._state is ReaderState.NEW:
            await self.open()
        elif self._state is ReaderState.CLOSED:
            raise UsageError("the stream was closed")
        elif self._state is ReaderState.DONE:
            raise StopAsyncIteration
        try:
            while (event := self._session.next_event()) is None:
                if self._eof:
                    await self._finish()
                    raise StopAsyncIteration
                await self._pump()
        except BaseException:
            await self._finish()
            raise
        return event

    async def _pump(self) -> None:
        """Read one block of the body and decode it (at the end: check the stream ended)."""
        with translating(in_body=True):
            chunk = await anext(self._chunks, None)
        if chunk is None:
            self._eof = True
            self._session.end_of_input()
        else:
            self._session.receive(chunk)

    async def _finish(self) -> None:
        self._state = ReaderState.DONE
        if self._response is not None:
            await self._response.aclose()

    @staticmethod
    async def _error_body(response: httpx.Response) -> bytes:
        body = ErrorBody()
        try:
            async for chunk in response.aiter_bytes():
                if not body.add(chunk):
                    break
        except httpx.HTTPError:
            pass  # report the status with whatever part of the body arrived
        return bytes(body.data)


class AsyncStreamReader(_Opened):
    """The files of one stream, each complete and verified: an async iterator of
    :class:`StreamedFile` and an async context manager that closes the response.

    Holds one file in memory at a time; see :class:`AsyncEventStream` for the rest.
    """

    def __init__(self, events: AsyncEventStream) -> None:
        self._events = events
        self._assembler = FileAssembler()

    def _stream_session(self) -> StreamSession:
        return self._events._stream_session()

    async def open(self) -> None:
        """Send the request and read up to the stream header."""
        await self._events.open()

    async def aclose(self) -> None:
        """Close the response. Safe to call twice."""
        await self._events.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamedFile:
        async for event in self._events:
            file = self._assembler.push(event)
            if file is not None:
                return file
        raise StopAsyncIteration


class AsyncClient(ClientBase):
    """An asyncio client of a wirelab server; see :class:`~wirelab.client.Client` for the
    meaning of the arguments. Use it as ``async with AsyncClient(...) as client:`` or call
    :meth:`aclose`."""

    _http: httpx.AsyncClient

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: Timeout = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        with translating():
            self._http = httpx.AsyncClient(
                transport=transport, verify=verify, **client_options(base_url, timeout, headers)
            )

    def stream(self, **options: Unpack[StreamOptions]) -> AsyncStreamReader:
        """The files of a new stream (lazy: the request is sent on ``async with`` or first
        use). See :meth:`Client.stream <wirelab.client.Client.stream>`."""
        return AsyncStreamReader(self.stream_events(**options))

    def stream_events(self, **options: Unpack[StreamOptions]) -> AsyncEventStream:
        """The verified events of a new stream; see :class:`AsyncEventStream`."""
        self._check_open()
        return AsyncEventStream(self._http, stream_query(options))

    async def manifest(self, **options: Unpack[StreamOptions]) -> dict[str, Any]:
        """What :meth:`stream` would send for the same options, without the data."""
        return await self._get_json(MANIFEST_PATH, stream_query(options))

    async def health(self) -> dict[str, Any]:
        """The server's ``/healthz`` document."""
        return await self._get_json(HEALTH_PATH, {})

    async def aclose(self) -> None:
        """Close every connection. Safe to call twice."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _get_json(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        self._check_open()
        with translating():
            response = await self._http.get(path, params=query)
        return decode_json(response, response.content)
