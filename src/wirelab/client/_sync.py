"""The blocking client: :class:`Client`, :class:`EventStream` and :class:`StreamReader`."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from .._closing import Closing
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

__all__ = ["Client", "EventStream", "StreamReader"]


class _Opened(StreamInfo):
    """Base of the readers: ``with`` opens the stream (:meth:`open`) and closes it."""

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventStream(_Opened):
    """The verified decoder events of one ``/v1/stream`` response, as they arrive.

    An iterator and a context manager. The request is sent on ``with`` or on the first
    ``next()``, which also reads up to the stream header, so :attr:`seed`, :attr:`count`
    and :attr:`params` are set from then on. Nothing of a file is kept: each
    :class:`~wirelab.framing.FileData` chunk is yielded as read, so memory stays bounded
    by the network read size.

    Every ``FileEnded`` arrives only after that file's size and digest were verified.
    ``StreamAborted`` is never yielded: an ``X`` frame raises
    :class:`~wirelab.TruncatedError`. Iteration ends after ``StreamEnded`` once the body
    ended cleanly; then :attr:`completed` is true. Any error closes the response. Calling
    ``next()`` after :meth:`close` raises :class:`~wirelab.UsageError` unless the stream
    had already ended.
    """

    def __init__(self, http: httpx.Client, query: dict[str, str]) -> None:
        self._http = http
        self._query = query
        self._state = ReaderState.NEW
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._session = StreamSession()
        self._eof = False

    def _stream_session(self) -> StreamSession:
        return self._session

    def open(self) -> None:
        """Send the request and read up to the stream header (idempotent while open).

        Raises :class:`~wirelab.HTTPStatusError` for an error status, the transport and
        protocol errors of the client otherwise.
        """
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
                self._response = response = self._http.send(request, stream=True)
            if not response.is_success:
                raise status_error(response, self._error_body(response))
            check_stream_response(response)
            self._chunks = response.iter_bytes()
            self._session = StreamSession(response.headers)
            while not self._session.started:  # the header is the first frame
                # next_event() raises an error queued before the header; an event there
                # (or the end of the body without an error) would be a decoder bug.
                if self._session.next_event() is not None or self._eof:
                    raise ProtocolError("the stream did not start with a stream header")
                self._pump()
        except BaseException:
            self._finish()
            raise

    def close(self) -> None:
        """Close the response (the server stops generating). Safe to call twice."""
        if self._state in (ReaderState.NEW, ReaderState.OPEN):
            self._state = ReaderState.CLOSED
        if self._response is not None:
            self._response.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        if self._state is ReaderState.NEW:
            self.open()
        elif self._state is ReaderState.CLOSED:
            raise UsageError("the stream was closed")
        elif self._state is ReaderState.DONE:
            raise StopIteration
        try:
            while (event := self._session.next_event()) is None:
                if self._eof:
                    self._finish()
                    raise StopIteration
                self._pump()
        except BaseException:
            self._finish()
            raise
        return event

    def _pump(self) -> None:
        """Read one block of the body and decode it (at the end: check the stream ended)."""
        with translating(in_body=True):
            chunk = next(self._chunks, None)
        if chunk is None:
            self._eof = True
            self._session.end_of_input()
        else:
            self._session.receive(chunk)

    def _finish(self) -> None:
        self._state = ReaderState.DONE
        if self._response is not None:
            self._response.close()

    @staticmethod
    def _error_body(response: httpx.Response) -> bytes:
        body = ErrorBody()
        try:
            for chunk in response.iter_bytes():
                if not body.add(chunk):
                    break
        except httpx.HTTPError:
            pass  # report the status with whatever part of the body arrived
        return bytes(body.data)


class StreamReader(_Opened):
    """The files of one stream, each complete and verified: an iterator of
    :class:`StreamedFile` and a context manager that closes the response.

    Holds one file in memory at a time (the one being received). The attributes and error
    behaviour are those of :class:`EventStream`; :attr:`total_bytes` and :attr:`completed`
    are set once iteration has ended normally.
    """

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self._assembler = FileAssembler()

    def _stream_session(self) -> StreamSession:
        return self._events._stream_session()

    def open(self) -> None:
        """Send the request and read up to the stream header (see :meth:`EventStream.open`)."""
        self._events.open()

    def close(self) -> None:
        """Close the response. Safe to call twice."""
        self._events.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamedFile:
        for event in self._events:
            file = self._assembler.push(event)
            if file is not None:
                return file
        raise StopIteration


class Client(ClientBase, Closing):
    """A blocking client of a wirelab server.

    ``base_url`` may include a path prefix (for a server behind a reverse proxy).
    ``timeout`` (seconds, or an ``httpx.Timeout``; ``None`` waits forever) bounds each
    connect and each read, not a whole stream: a paced stream may take as long as its
    intervals say, but a silence longer than ``timeout`` raises
    :class:`~wirelab.TimeoutError`. ``transport`` replaces the network (an
    ``httpx.MockTransport`` in tests). ``headers`` are sent with every request. ``verify``
    is for ``https`` URLs: ``True`` checks the server's certificate against the system's
    CAs, a path to a CA bundle or an ``ssl.SSLContext`` against those, ``False`` not at all.
    A certificate that fails the check raises :class:`~wirelab.NetworkError` naming it.

    Every method raises only :class:`~wirelab.WirelabError` subclasses for network,
    protocol and HTTP failures.
    """

    _http: httpx.Client

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        with translating():
            self._http = httpx.Client(
                transport=transport, verify=verify, **client_options(base_url, timeout, headers)
            )

    def stream(self, **options: Unpack[StreamOptions]) -> StreamReader:
        """The files of a new stream (lazy: the request is sent on ``with`` or first use).

        ``options`` are the query parameters (:class:`StreamOptions`); those left out or
        ``None`` are not sent. Raises :class:`~wirelab.UsageError` for an unknown option.
        """
        return StreamReader(self.stream_events(**options))

    def stream_events(self, **options: Unpack[StreamOptions]) -> EventStream:
        """The verified events of a new stream, for consumers that must not hold whole
        files (they get each data chunk as it arrives). Same options as :meth:`stream`."""
        self._check_open()
        return EventStream(self._http, stream_query(options))

    def manifest(self, **options: Unpack[StreamOptions]) -> dict[str, Any]:
        """What :meth:`stream` would send for the same options (give a ``seed`` to compare),
        without the data: ``{version, seed, count, total_bytes, dtype, byteorder, params,
        files: [{index, name, size, offset, sha256}]}``."""
        return self._get_json(MANIFEST_PATH, stream_query(options))

    def health(self) -> dict[str, Any]:
        """The server's ``/healthz`` document."""
        return self._get_json(HEALTH_PATH, {})

    def close(self) -> None:
        """Close every connection. Safe to call twice."""
        self._http.close()

    def _get_json(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        self._check_open()
        with translating():
            response = self._http.get(path, params=query)
        return decode_json(response, response.content)
